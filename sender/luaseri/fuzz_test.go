package luaseri

import (
	"errors"
	"testing"
)

func FuzzUnpack(f *testing.F) {
	for _, b := range loadPackVectors(f) {
		f.Add(b)
	}
	f.Add([]byte{0xfe, 0x22, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x0e, 0x0c, 0x61, 0x0a, 0x01, 0x0c, 0x62, 0x00})
	_, deepest := emptyNested(33)
	f.Add(deepest)
	f.Fuzz(func(t *testing.T, data []byte) {
		values, err := Unpack(data)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUserdata) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("Unpack error %v is none of the documented kinds", err)
			}
			return
		}
		packed, err := Pack(values...)
		if err != nil {
			t.Fatalf("Pack(Unpack(x)): %v", err)
		}
		again, err := Unpack(packed)
		if err != nil {
			t.Fatalf("Unpack(Pack(Unpack(x))): %v", err)
		}
		if !equalValues(again, values) {
			t.Fatalf("values changed on repacking:\n got %#v\nwant %#v", again, values)
		}
	})
}
