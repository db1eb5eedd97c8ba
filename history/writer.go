package history

import (
	"bufio"
	"io"
)

// Writer writes events as JSONL. It buffers; call Flush to push what was
// written so far to the underlying writer (the harness flushes after every
// event so that a crashed run still leaves a checkable prefix).
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// Write writes one event and a newline.
func (w *Writer) Write(e *Event) error {
	w.buf = e.AppendJSON(w.buf[:0])
	w.buf = append(w.buf, '\n')
	_, err := w.w.Write(w.buf)
	return err
}

// Flush writes buffered events to the underlying writer.
func (w *Writer) Flush() error { return w.w.Flush() }
