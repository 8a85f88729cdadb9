package ipnet

import (
	"bytes"
	"io"
)

type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
