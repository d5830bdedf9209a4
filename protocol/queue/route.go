package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/models"
)

// Hop is a server mail is handed to: host name (or IP literal) and port.
type Hop struct {
	Host string
	Port int
}

func (h Hop) String() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// ParseHop reads "host:port" ("host" alone takes defaultPort when it is not 0).
// IPv6 literals are written in brackets: "[2001:db8::1]:25".
func ParseHop(s string, defaultPort int) (Hop, error) {
	s = strings.TrimSpace(s)
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if defaultPort == 0 || strings.Contains(s, ":") && !strings.HasPrefix(s, "[") {
			return Hop{}, fmt.Errorf("%q: want host:port", s)
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), strconv.Itoa(defaultPort)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port != strconv.Itoa(p) {
		return Hop{}, fmt.Errorf("%q: port must be a number from 1 to 65535", s)
	}
	h, err := normalizeHost(host)
	if err != nil {
		return Hop{}, fmt.Errorf("%q: %w", s, err)
	}
	return Hop{Host: h, Port: p}, nil
}

// normalizeHost accepts an IP literal or a host name (letters, digits, '-',
// '_' in dot-separated labels) and returns it in canonical form.
func normalizeHost(host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" {
		return "", errors.New("host name is empty")
	}
	if len(h) > 253 {
		return "", errors.New("host name is longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("host name %q has an empty or over-long label", host)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host name %q contains %q", host, c)
			}
		}
	}
	return h, nil
}

// TransportMap routes mail for given domains to fixed hops, past MX lookup and
// past the relay host (MAILGATE_TRANSPORT_MAP). Keys are normalized domains.
type TransportMap map[string]Hop

// ParseTransportMap reads the MAILGATE_TRANSPORT_MAP syntax: comma-separated
// "domain=host:port" entries, for example
// "example.org=mx.internal:25,b.test=[::1]:2525". Blanks around entries are
// ignored; the empty string is the empty map. Every entry needs a port; a domain
// may appear once.
func ParseTransportMap(s string) (TransportMap, error) {
	m := TransportMap{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("transport map entry %d is empty (stray comma?)", i+1)
		}
		dom, dest, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("transport map entry %d %q: want domain=host:port", i+1, entry)
		}
		if !utf8.ValidString(dom) {
			return nil, fmt.Errorf("transport map entry %d: domain is not valid UTF-8", i+1)
		}
		d, err := models.NormalizeDomain(dom)
		if err != nil {
			return nil, fmt.Errorf("transport map entry %d %q: %w", i+1, entry, err)
		}
		hop, err := ParseHop(dest, 0)
		if err != nil {
			return nil, fmt.Errorf("transport map entry %d (%s): %w", i+1, d, err)
		}
		if _, dup := m[d]; dup {
			return nil, fmt.Errorf("transport map entry %d: domain %s is listed twice", i+1, d)
		}
		m[d] = hop
	}
	return m, nil
}

// String renders the map in ParseTransportMap's syntax, sorted by domain.
func (m TransportMap) String() string {
	doms := make([]string, 0, len(m))
	for d := range m {
		doms = append(doms, d)
	}
	sort.Strings(doms)
	parts := make([]string, len(doms))
	for i, d := range doms {
		parts[i] = d + "=" + m[d].String()
	}
	return strings.Join(parts, ",")
}

// Resolver is the part of *net.Resolver the queue uses.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// maxMX is how many MX hosts one attempt tries (Postfix's smtp_mx_address_limit).
const maxMX = 5

// target is one hop of a route with how to talk to it.
type target struct {
	Hop
	relay    bool // the smarthost: authenticate when credentials are set
	implicit bool // the domain itself, having no MX (RFC 5321 §5.1)
	noTLS    bool // a TLS handshake failed here: go on in plain text (RFC 7435)
	// fromDNS marks a hop named by the recipient's domain (its MX, or the
	// domain itself) rather than by the operator: anyone can point DNS
	// anywhere, so only public addresses of it are dialed (see publicAddr).
	fromDNS bool
}

// route finds where mail for domain goes: the transport map, else the relay
// host, else the domain's MX hosts by preference (equal preferences in random
// order, RFC 5321 §5.1), else the domain's own address.
func (q *Queue) route(ctx context.Context, domain string) ([]target, *failure) {
	if h, ok := q.opt.TransportMap[domain]; ok {
		return []target{{Hop: h}}, nil
	}
	if q.relay != nil {
		return []target{{Hop: *q.relay, relay: true}}, nil
	}
	mxs, err := q.opt.Resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		return nil, &failure{status: "4.4.3", stage: "MX lookup", err: fmt.Errorf("look up MX of %s: %w", domain, err)}
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		// RFC 7505: the domain accepts no mail at all.
		return nil, &failure{perm: true, status: "5.1.10", stage: "MX lookup", err: fmt.Errorf("domain %s has a null MX: it accepts no mail", domain)}
	}
	if len(mxs) == 0 {
		return []target{{Hop: Hop{Host: domain, Port: q.opt.MXPort}, implicit: true, fromDNS: true}}, nil
	}
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	var out []target
	for _, mx := range mxs {
		h, err := normalizeHost(mx.Host)
		if err != nil || mx.Host == "." {
			continue
		}
		out = append(out, target{Hop: Hop{Host: h, Port: q.opt.MXPort}, fromDNS: true})
		if len(out) == maxMX {
			break
		}
	}
	if len(out) == 0 {
		return nil, &failure{status: "4.4.3", stage: "MX lookup", err: fmt.Errorf("MX records of %s name no usable host", domain)}
	}
	return out, nil
}

// addresses resolves a target's host. A domain without MX whose name does not
// resolve either cannot receive mail: that failure is permanent. The addresses
// of a hop from DNS that are not public are dropped (unless AllowPrivateMX);
// when none is left the failure is marked nonPublic.
func (q *Queue) addresses(ctx context.Context, t target) ([]string, *failure) {
	var ips []net.IPAddr
	if ip := net.ParseIP(t.Host); ip != nil {
		ips = []net.IPAddr{{IP: ip}}
	} else {
		var err error
		ips, err = q.opt.Resolver.LookupIPAddr(ctx, t.Host)
		var dnsErr *net.DNSError
		switch {
		case err != nil && t.implicit && errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return nil, &failure{perm: true, status: "5.4.4", stage: "address lookup", remote: t.Host,
				err: fmt.Errorf("domain %s has no MX and no address", t.Host)}
		case err != nil:
			return nil, &failure{status: "4.4.3", stage: "address lookup", remote: t.Host, err: fmt.Errorf("look up %s: %w", t.Host, err)}
		case len(ips) == 0:
			return nil, &failure{status: "4.4.4", stage: "address lookup", remote: t.Host, err: fmt.Errorf("%s has no address", t.Host)}
		}
	}
	out := make([]string, 0, len(ips))
	var skipped []string
	for _, ip := range ips {
		if t.fromDNS && !q.opt.AllowPrivateMX && !publicAddr(ip.IP) {
			skipped = append(skipped, ip.IP.String())
			continue
		}
		out = append(out, ip.IP.String())
	}
	if len(out) == 0 {
		q.log.Warn("not connecting to a host named in DNS: no public address", "host", t.Host, "addrs", skipped)
		return nil, &failure{status: "5.4.4", stage: "address lookup", remote: t.Host, nonPublic: skipped,
			err: fmt.Errorf("%s resolves only to non-public addresses (%s)", t.Host, strings.Join(skipped, ", "))}
	}
	if len(skipped) > 0 {
		q.log.Info("skipping non-public addresses of a host named in DNS", "host", t.Host, "addrs", skipped)
	}
	if len(out) > 4 {
		out = out[:4]
	}
	return out, nil
}

// specialPurpose are the address blocks, beyond what netip's methods tell, that
// no host on the Internet is reached at (the IANA special-purpose address
// registries, RFC 6890): mail to a domain must not make mailgate connect to
// its own host or network through them.
var specialPurpose = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791)
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (RFC 5737)
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast, deprecated (RFC 7526)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (RFC 5737)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (RFC 5737)
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),           // IPv4-compatible, deprecated (RFC 4291), with :: and ::1
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("100::/64"),        // discard-only (RFC 6666)
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking (RFC 5180)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
	netip.MustParsePrefix("fec0::/10"),       // site-local, deprecated (RFC 3879)
}

// Blocks whose addresses carry an IPv4 address that the traffic ends up at.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the IPv4 address is the last 32 bits
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056: the IPv4 address is bits 16 to 47
)

// publicAddr reports whether ip is a public unicast address: not loopback,
// private (RFC 1918, RFC 4193), link-local, unspecified, multicast, nor in
// another special-purpose block (see specialPurpose). IPv4 addresses mapped
// into IPv6, or carried by NAT64 and 6to4 addresses, are judged as IPv4.
func publicAddr(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap().WithZone("")
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	for _, p := range specialPurpose {
		if p.Contains(a) {
			return false
		}
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return publicAddr(net.IP(b[12:16]))
	case sixToFour.Contains(a):
		return publicAddr(net.IP(b[2:6]))
	}
	return true
}
