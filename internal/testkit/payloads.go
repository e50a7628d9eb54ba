package testkit

import "bytes"

// DeepPayload is a skynet.pack'ed message nested 200,000 tables deep,
// 400 KB: the one that crashes a skynet node (docs/reliability.md).
func DeepPayload() []byte {
	const k = 200000
	b := append(bytes.Repeat([]byte{0x0e}, k), 0x0a, 0x01)
	return append(b, bytes.Repeat([]byte{0x00}, k)...)
}
