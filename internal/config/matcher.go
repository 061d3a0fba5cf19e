package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Matcher is a health check's success codes, ALB's Matcher.HttpCode:
// "200", "200,202" or "200-299". An empty Matcher matches nothing, and
// Validate refuses it.
type Matcher []CodeRange

// CodeRange is an inclusive range of HTTP status codes.
type CodeRange struct{ Lo, Hi int }

// Match reports whether code is a success.
func (m Matcher) Match(code int) bool {
	for _, r := range m {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

func (m Matcher) String() string {
	parts := make([]string, len(m))
	for i, r := range m {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

// ParseMatcher parses ALB's matcher syntax. Codes must lie in 200-499.
func ParseMatcher(s string) (Matcher, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty matcher; want codes such as \"200\", \"200,202\" or \"200-299\"")
	}
	var m Matcher
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCode(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseCode(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q ends before it starts", part)
			}
		}
		m = append(m, CodeRange{a, b})
	}
	return m, nil
}

func parseCode(s string) (int, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	if err != nil || len(s) != 3 {
		return 0, fmt.Errorf("%q is not an HTTP status code", s)
	}
	if n < 200 || n > 499 {
		return 0, fmt.Errorf("status code %d is outside 200-499", n)
	}
	return n, nil
}

// checkMatcher returns Validate's message about a matcher, or "": those
// ParseMatcher gives for the same mistakes.
func checkMatcher(m Matcher) string {
	if len(m) == 0 {
		return "empty matcher; want codes such as \"200\", \"200,202\" or \"200-299\""
	}
	for _, r := range m {
		for _, c := range []int{r.Lo, r.Hi} {
			if c < 200 || c > 499 {
				return fmt.Sprintf("status code %d is outside 200-499", c)
			}
		}
		if r.Hi < r.Lo {
			return fmt.Sprintf("range \"%d-%d\" ends before it starts", r.Lo, r.Hi)
		}
	}
	return ""
}
