package luaseri

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Unpack deserializes every value in data, as skynet.unpack does. See the
// package doc for the Go types it returns. Empty data gives an empty slice.
func Unpack(data []byte) ([]any, error) {
	d := decoder{data: data}
	out := make([]any, 0, 4)
	for d.off < len(d.data) {
		v, err := d.value(0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

type decoder struct {
	data []byte
	off  int
}

// take returns the next n bytes, or an error naming what needed them and the
// offset of the value being read.
func (d *decoder) take(n int, what string, at int) ([]byte, error) {
	if n < 0 || len(d.data)-d.off < n {
		return nil, fmt.Errorf("%w at offset %d: %s needs %d bytes, %d left", ErrTruncated, at, what, n, len(d.data)-d.off)
	}
	b := d.data[d.off : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) malformed(at int, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrMalformed, at, fmt.Sprintf(format, args...))
}

// integer reads the data of a number whose cookie is an integer width.
func (d *decoder) integer(cookie byte, at int) (int64, error) {
	switch cookie {
	case numberZero:
		return 0, nil
	case numberByte:
		b, err := d.take(1, "a byte integer", at)
		if err != nil {
			return 0, err
		}
		return int64(b[0]), nil
	case numberWord:
		b, err := d.take(2, "a word integer", at)
		if err != nil {
			return 0, err
		}
		return int64(binary.LittleEndian.Uint16(b)), nil
	case numberDword:
		b, err := d.take(4, "a dword integer", at)
		if err != nil {
			return 0, err
		}
		return int64(int32(binary.LittleEndian.Uint32(b))), nil
	case numberQword:
		b, err := d.take(8, "a qword integer", at)
		if err != nil {
			return 0, err
		}
		return int64(binary.LittleEndian.Uint64(b)), nil
	}
	return 0, d.malformed(at, "number cookie %d", cookie)
}

func (d *decoder) value(depth int) (any, error) {
	at := d.off
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w at offset %d", ErrTooDeep, at)
	}
	hdr, err := d.take(1, "a value", at)
	if err != nil {
		return nil, err
	}
	t, cookie := hdr[0]&7, hdr[0]>>3
	switch t {
	case typeNil:
		return nil, nil
	case typeBoolean:
		return cookie != 0, nil
	case typeNumber:
		if cookie == numberReal {
			b, err := d.take(8, "a float", at)
			if err != nil {
				return nil, err
			}
			return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
		}
		return d.integer(cookie, at)
	case typeUserdata:
		return nil, fmt.Errorf("%w (at offset %d)", ErrUserdata, at)
	case typeShortString:
		b, err := d.take(int(cookie), "a short string", at)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case typeLongString:
		var n int
		switch cookie {
		case 2:
			b, err := d.take(2, "a string length", at)
			if err != nil {
				return nil, err
			}
			n = int(binary.LittleEndian.Uint16(b))
		case 4:
			b, err := d.take(4, "a string length", at)
			if err != nil {
				return nil, err
			}
			n = int(binary.LittleEndian.Uint32(b))
		default:
			return nil, d.malformed(at, "long string cookie %d", cookie)
		}
		b, err := d.take(n, "a long string", at)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case typeTable:
		return d.table(cookie, depth, at)
	}
	return nil, d.malformed(at, "unknown type %d", t)
}

func (d *decoder) table(cookie byte, depth, at int) (any, error) {
	n := int64(cookie)
	if cookie == maxCookie-1 {
		sizeAt := d.off
		hdr, err := d.take(1, "an array size", at)
		if err != nil {
			return nil, err
		}
		if hdr[0]&7 != typeNumber || hdr[0]>>3 == numberReal {
			return nil, d.malformed(sizeAt, "array size is not an integer (byte 0x%02x)", hdr[0])
		}
		if n, err = d.integer(hdr[0]>>3, sizeAt); err != nil {
			return nil, err
		}
	}
	// Every value takes at least one byte: a larger size is a lie, and must
	// not size an allocation.
	if n < 0 || n > int64(len(d.data)-d.off) {
		return nil, d.malformed(at, "array size %d with %d bytes left", n, len(d.data)-d.off)
	}
	arr := make([]any, n)
	for i := range arr {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr[i] = v
	}
	var hash map[any]any
	for {
		keyAt := d.off
		// The nil that ends a table is read here, not as a value one level
		// down: skynet packs an empty table at the depth limit.
		var k any
		var err error
		if keyAt < len(d.data) && d.data[keyAt]&7 == typeNil {
			d.off++
		} else if k, err = d.value(depth + 1); err != nil {
			return nil, err
		}
		switch kk := k.(type) {
		case nil:
			switch {
			case len(hash) == 0:
				return arr, nil
			case n == 0:
				return hash, nil
			}
			return Table{Array: arr, Hash: hash}, nil
		case float64:
			if math.IsNaN(kk) {
				return nil, d.malformed(keyAt, "NaN table key")
			}
			k = normalKey(kk)
		case bool, int64, string:
		default:
			return nil, d.malformed(keyAt, "a table used as a table key cannot be a Go map key")
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		// Assign as Lua's rawset does: an index of the array part replaces
		// that element, and a nil value removes the key.
		if i, ok := k.(int64); ok && i >= 1 && i <= n {
			arr[i-1] = v
			continue
		}
		if v == nil {
			delete(hash, k)
			continue
		}
		if hash == nil {
			hash = make(map[any]any)
		}
		hash[k] = v
	}
}
