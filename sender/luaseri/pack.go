package luaseri

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
)

// Pack serializes values as skynet.pack does. See the package doc for the
// mapping of Go types.
func Pack(values ...any) ([]byte, error) {
	// One allocation covers the usual small message (a command and a few
	// arguments); larger ones grow as append does.
	return AppendPack(make([]byte, 0, 64), values...)
}

// AppendPack appends the serialization of values to dst. On error it returns
// dst unchanged in length.
func AppendPack(dst []byte, values ...any) ([]byte, error) {
	e := encoder{buf: dst}
	for _, v := range values {
		if err := e.value(v, 0); err != nil {
			return dst, err
		}
	}
	return e.buf, nil
}

type encoder struct {
	buf []byte
}

func (e *encoder) integer(v int64) {
	switch {
	case v == 0:
		e.buf = append(e.buf, combine(typeNumber, numberZero))
	case v != int64(int32(v)):
		e.buf = append(e.buf, combine(typeNumber, numberQword))
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(v))
	case v < 0:
		e.buf = append(e.buf, combine(typeNumber, numberDword))
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(int32(v)))
	case v < 0x100:
		e.buf = append(e.buf, combine(typeNumber, numberByte), byte(v))
	case v < 0x10000:
		e.buf = append(e.buf, combine(typeNumber, numberWord))
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(v))
	default:
		e.buf = append(e.buf, combine(typeNumber, numberDword))
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(v))
	}
}

func (e *encoder) uinteger(v uint64) error {
	if v > math.MaxInt64 {
		return fmt.Errorf("%w integer %d: above the Lua integer range", ErrUnsupported, v)
	}
	e.integer(int64(v))
	return nil
}

func (e *encoder) float(f float64) {
	e.buf = append(e.buf, combine(typeNumber, numberReal))
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(f))
}

func (e *encoder) stringHeader(n int) error {
	switch {
	case n < maxCookie:
		e.buf = append(e.buf, combine(typeShortString, byte(n)))
	case n < 0x10000:
		e.buf = append(e.buf, combine(typeLongString, 2))
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(n))
	case uint64(n) <= math.MaxUint32:
		e.buf = append(e.buf, combine(typeLongString, 4))
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(n))
	default:
		return fmt.Errorf("%w a string of %d bytes: over 4 GiB", ErrUnsupported, n)
	}
	return nil
}

func (e *encoder) str(s string) error {
	if err := e.stringHeader(len(s)); err != nil {
		return err
	}
	e.buf = append(e.buf, s...)
	return nil
}

func (e *encoder) bytes(b []byte) error {
	if err := e.stringHeader(len(b)); err != nil {
		return err
	}
	e.buf = append(e.buf, b...)
	return nil
}

func (e *encoder) tableHeader(n int) {
	if n < maxCookie-1 {
		e.buf = append(e.buf, combine(typeTable, byte(n)))
		return
	}
	e.buf = append(e.buf, combine(typeTable, maxCookie-1))
	e.integer(int64(n))
}

func (e *encoder) value(v any, depth int) error {
	if depth > MaxDepth {
		return ErrTooDeep
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, typeNil)
	case bool:
		if x {
			e.buf = append(e.buf, combine(typeBoolean, 1))
		} else {
			e.buf = append(e.buf, combine(typeBoolean, 0))
		}
	case int:
		e.integer(int64(x))
	case int64:
		e.integer(x)
	case int32:
		e.integer(int64(x))
	case int16:
		e.integer(int64(x))
	case int8:
		e.integer(int64(x))
	case uint:
		return e.uinteger(uint64(x))
	case uint64:
		return e.uinteger(x)
	case uint32:
		e.integer(int64(x))
	case uint16:
		e.integer(int64(x))
	case uint8:
		e.integer(int64(x))
	case uintptr:
		return e.uinteger(uint64(x))
	case float64:
		e.float(x)
	case float32:
		e.float(float64(x))
	case string:
		return e.str(x)
	case []byte:
		return e.bytes(x)
	case []any:
		e.tableHeader(len(x))
		for _, el := range x {
			if err := e.value(el, depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, typeNil)
	case Table:
		return e.table(&x, depth)
	case *Table:
		if x == nil {
			return fmt.Errorf("%w a nil *luaseri.Table", ErrUnsupported)
		}
		return e.table(x, depth)
	default:
		return e.reflectValue(reflect.ValueOf(v), depth)
	}
	return nil
}

func (e *encoder) table(t *Table, depth int) error {
	e.tableHeader(len(t.Array))
	for _, el := range t.Array {
		if err := e.value(el, depth+1); err != nil {
			return err
		}
	}
	if err := e.hash(reflect.ValueOf(t.Hash), len(t.Array), depth); err != nil {
		return err
	}
	e.buf = append(e.buf, typeNil)
	return nil
}

// reflectValue packs what the type switch in value does not know by name:
// named types, typed slices, arrays and maps.
func (e *encoder) reflectValue(rv reflect.Value, depth int) error {
	switch rv.Kind() {
	case reflect.Bool:
		return e.value(rv.Bool(), depth)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.integer(rv.Int())
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return e.uinteger(rv.Uint())
	case reflect.Float32, reflect.Float64:
		e.float(rv.Float())
		return nil
	case reflect.String:
		return e.str(rv.String())
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			if rv.Kind() == reflect.Slice {
				return e.bytes(rv.Bytes())
			}
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			return e.bytes(b)
		}
		n := rv.Len()
		e.tableHeader(n)
		for i := 0; i < n; i++ {
			if err := e.value(rv.Index(i).Interface(), depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, typeNil)
		return nil
	case reflect.Map:
		e.tableHeader(0)
		if err := e.hash(rv, 0, depth); err != nil {
			return err
		}
		e.buf = append(e.buf, typeNil)
		return nil
	case reflect.Interface:
		if rv.IsNil() {
			return e.value(nil, depth)
		}
		return e.value(rv.Elem().Interface(), depth)
	}
	if !rv.IsValid() {
		return e.value(nil, depth)
	}
	return fmt.Errorf("%w %s", ErrUnsupported, rv.Type())
}

// hashKey is a map key reduced to what orders it on the wire.
type hashKey struct {
	class int // 0 bool, 1 number, 2 string
	b     bool
	i     int64
	f     float64
	float bool
	s     string
	key   any // the key as given, packed as is
	val   reflect.Value
}

func compareKeys(a, b hashKey) int {
	if c := cmp.Compare(a.class, b.class); c != 0 {
		return c
	}
	switch a.class {
	case 0:
		switch {
		case a.b == b.b:
			return 0
		case !a.b:
			return -1
		}
		return 1
	case 1:
		if !a.float && !b.float {
			return cmp.Compare(a.i, b.i)
		}
		af, bf := a.f, b.f
		if !a.float {
			af = float64(a.i)
		}
		if !b.float {
			bf = float64(b.i)
		}
		if c := cmp.Compare(af, bf); c != 0 {
			return c
		}
		// Integers before floats of the same value, for a total order.
		return cmp.Compare(boolInt(a.float), boolInt(b.float))
	}
	return strings.Compare(a.s, b.s)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// makeKey checks that k can be a Lua table key and says how it sorts.
// arrayLen is the size of the array part packed before the hash part.
func makeKey(k reflect.Value, arrayLen int) (hashKey, error) {
	for k.Kind() == reflect.Interface {
		if k.IsNil() {
			return hashKey{}, fmt.Errorf("%w a nil table key", ErrUnsupported)
		}
		k = k.Elem()
	}
	hk := hashKey{key: k.Interface()}
	switch k.Kind() {
	case reflect.Bool:
		hk.class, hk.b = 0, k.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		hk.class, hk.i = 1, k.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if k.Uint() > math.MaxInt64 {
			return hashKey{}, fmt.Errorf("%w integer key %d: above the Lua integer range", ErrUnsupported, k.Uint())
		}
		hk.class, hk.i = 1, int64(k.Uint())
	case reflect.Float32, reflect.Float64:
		hk.class, hk.f, hk.float = 1, k.Float(), true
		if math.IsNaN(hk.f) {
			return hashKey{}, fmt.Errorf("%w a NaN table key", ErrUnsupported)
		}
	case reflect.String:
		hk.class, hk.s = 2, k.String()
	default:
		return hashKey{}, fmt.Errorf("%w %s as a table key", ErrUnsupported, k.Type())
	}
	if arrayLen > 0 && hk.class == 1 {
		i := hk.i
		if hk.float {
			n, ok := normalKey(hk.f).(int64)
			i = n
			if !ok {
				i = 0
			}
		}
		if i >= 1 && i <= int64(arrayLen) {
			return hashKey{}, fmt.Errorf("%w hash key %v: it is an index of the array part (1..%d)", ErrUnsupported, hk.key, arrayLen)
		}
	}
	return hk, nil
}

// hash packs the key/value pairs of the map m (possibly nil) in sorted key
// order, without the terminating nil.
func (e *encoder) hash(m reflect.Value, arrayLen, depth int) error {
	if !m.IsValid() || m.Len() == 0 {
		return nil
	}
	if sm, ok := m.Interface().(map[string]any); ok {
		keys := make([]string, 0, len(sm))
		for k := range sm {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := e.value(k, depth+1); err != nil {
				return err
			}
			if err := e.value(sm[k], depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	keys := make([]hashKey, 0, m.Len())
	it := m.MapRange()
	for it.Next() {
		hk, err := makeKey(it.Key(), arrayLen)
		if err != nil {
			return err
		}
		hk.val = it.Value()
		keys = append(keys, hk)
	}
	slices.SortFunc(keys, compareKeys)
	for _, hk := range keys {
		if err := e.value(hk.key, depth+1); err != nil {
			return err
		}
		if err := e.value(hk.val.Interface(), depth+1); err != nil {
			return err
		}
	}
	return nil
}
