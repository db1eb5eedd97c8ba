// Package history is the record of one run: the Event type and a streaming
// JSONL reader and writer in the format of DESIGN.md ("History"). Every
// producer (harness, simulator, hand-written fixtures) writes it and the
// checker reads only it.
//
// One JSON object a line:
//
//	{"t": 1500200000, "proc": "c1", "type": "ok", "f": "acquire", "key": "widgets", "token": 7}
//
// t is nanoseconds from the start of the run on one clock shared by every
// process of the run; proc, type and f are required; key, token and value
// are optional; unknown fields are ignored.
package history
