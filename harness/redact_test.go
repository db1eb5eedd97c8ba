package harness

import "testing"

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable":             "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"dial postgres://bob:s3cr%40t@127.0.0.1:5432/db?sslmode=disable: refused": "dial postgres://bob:xxxxx@127.0.0.1:5432/db?sslmode=disable: refused",
		"host=127.0.0.1 user=bob password='a b\\'c' dbname=x":                     "host=127.0.0.1 user=bob password=xxxxx dbname=x",
		"postgres://h/db?user=bob&password=hunter2&sslmode=disable":               "postgres://h/db?user=bob&password=xxxxx&sslmode=disable",
		"http://127.0.0.1:8500/v1/kv/k?token=abc":                                 "http://127.0.0.1:8500/v1/kv/k?token=xxxxx",
		"memcached 127.0.0.1:11211: timeout":                                      "memcached 127.0.0.1:11211: timeout",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
