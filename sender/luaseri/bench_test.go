package luaseri

import "testing"

func BenchmarkPack(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = AppendPack(buf[:0], "echo", "hello", 42); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPackNewBuffer(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Pack("echo", "hello", 42); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnpack(b *testing.B) {
	data, err := Pack("echo", "hello", 42)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Unpack(data); err != nil {
			b.Fatal(err)
		}
	}
}
