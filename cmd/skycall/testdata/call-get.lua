{2.5, [10]=true, hp=100, items={"sword", "shield"}, name="ann"}
