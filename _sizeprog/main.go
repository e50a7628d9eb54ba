package main

import (
	"context"
	"fmt"

	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/registry"
)

func main() {
	c := sender.New(registry.NewStatic(map[string]string{"db": "127.0.0.1:2528"}))
	defer c.Close()
	_, err := c.Call(context.Background(), "db", "@echo", []byte("hi"))
	fmt.Println(err)
}
