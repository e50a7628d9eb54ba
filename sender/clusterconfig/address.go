package clusterconfig

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// MaxHost is the longest host of an address, in bytes (a DNS name's limit).
const MaxHost = 253

// CheckAddress says why addr is not an address skycall hands to skynet, or
// nil: host:port with host an IPv4 address (no leading zeros), a DNS name
// or a bracketed IPv6 address (no zone, not IPv4-mapped: Kubernetes' isIP
// refuses those), and port 1 to 65535 (at most five digits). It is checked
// wherever an address reaches a skynet process, for objects stored before
// the CRD had the rule and for files written by hand.
func CheckAddress(addr string) error {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return fmt.Errorf("address %q is not host:port", addr)
	}
	host, portText := addr[:i], addr[i+1:]
	if portText == "" || len(portText) > 5 || strings.Trim(portText, "0123456789") != "" {
		return fmt.Errorf("address %q has an invalid port (want 1 to 65535)", addr)
	}
	if port, _ := strconv.Atoi(portText); port < 1 || port > 65535 {
		return fmt.Errorf("address %q has an invalid port (want 1 to 65535)", addr)
	}
	if len(host) > MaxHost {
		return fmt.Errorf("address %q: the host is longer than %d bytes", addr, MaxHost)
	}
	if strings.HasPrefix(host, "[") {
		ip, err := netip.ParseAddr(strings.TrimSuffix(host[1:], "]"))
		if !strings.HasSuffix(host, "]") || err != nil || !ip.Is6() || ip.Zone() != "" || ip.Is4In6() {
			return fmt.Errorf("address %q has an invalid IPv6 address", addr)
		}
		return nil
	}
	if ipv4Like.MatchString(host) {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is4() {
			return fmt.Errorf("address %q has an invalid IPv4 address", addr)
		}
		return nil
	}
	if !dnsName.MatchString(host) {
		return fmt.Errorf("address %q: host must be an IPv4 address, a DNS name or [IPv6]", addr)
	}
	return nil
}

var (
	ipv4Like = regexp.MustCompile(`^[0-9]+(\.[0-9]+){3}$`)
	dnsName  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)
