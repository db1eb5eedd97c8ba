package harness

import "regexp"

var (
	// userinfoPassword is the password of a URL's userinfo: scheme://user:PASSWORD@host.
	userinfoPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s]*):[^@/\s]*@`)
	// keywordSecret is a key=value secret of a libpq keyword/value
	// connection string or a URL query (password=, sslpassword=, token=).
	keywordSecret = regexp.MustCompile(`(?i)\b((?:ssl)?password|passwd|token|secret)=('(?:[^'\\]|\\.)*'|[^\s&'"]*)`)
)

// Redact hides the credentials in connection strings within s (a URL's
// password, password= and token= values), so that logs and verdicts never
// hold them. The DSNs locksim builds carry none (its servers trust
// loopback); Redact guards what a driver's error message may quote.
func Redact(s string) string {
	s = userinfoPassword.ReplaceAllString(s, "$1:xxxxx@")
	return keywordSecret.ReplaceAllString(s, "$1=xxxxx")
}
