package megamutex_test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// statGets is memcached's cmd_get statistic on addr.
func statGets(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "stats\r\n"); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		if line == "END" {
			break
		}
		if v, ok := strings.CutPrefix(line, "STAT cmd_get "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no cmd_get in stats of %s", addr)
}
