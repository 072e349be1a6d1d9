package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ProxyKeyHeader carries the key by which the web front end that `blog
// serve` starts in the same process proves to the APIs that it is their
// trusted proxy, whatever address it connects from. Only that process knows
// the key (random, made at start-up), so no other local client can claim it.
const ProxyKeyHeader = "X-Blog-Proxy-Key"

// Proxies says which peers may name the client of a request in
// X-Forwarded-For (and its scheme in X-Forwarded-Proto): those whose
// address lies in one of the configured networks (BLOG_TRUSTED_PROXIES), or
// that present the in-process key. A nil *Proxies trusts nobody, which is
// the default: anyone can send these headers, so by default they are
// ignored and the connection's peer is the client.
type Proxies struct {
	nets  []netip.Prefix
	key   [sha256.Size]byte
	keyed bool
}

// ParseProxies reads a list of networks in CIDR notation ("10.0.0.0/8") or
// single addresses, separated by commas or spaces. An empty list trusts
// nobody (and returns a usable *Proxies).
func ParseProxies(list string) (*Proxies, error) {
	p := &Proxies{}
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if pre, err := netip.ParsePrefix(f); err == nil {
			p.nets = append(p.nets, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither a CIDR network (10.0.0.0/8) nor an address", f)
		}
		a = a.Unmap().WithZone("")
		p.nets = append(p.nets, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

// WithKey returns a copy of p that also trusts a peer presenting key in
// ProxyKeyHeader. An empty key adds nothing.
func (p *Proxies) WithKey(key string) *Proxies {
	out := &Proxies{}
	if p != nil {
		*out = *p
	}
	if key != "" {
		out.key, out.keyed = sha256.Sum256([]byte(key)), true
	}
	return out
}

// String lists the trusted networks, for the start-up log.
func (p *Proxies) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(p.nets))
	for i, n := range p.nets {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

// peer is the address of r's connection (invalid if RemoteAddr is not one).
func peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap().WithZone("")
}

func (p *Proxies) contains(a netip.Addr) bool {
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// Trusted reports whether r's peer is a trusted proxy.
func (p *Proxies) Trusted(r *http.Request) bool {
	if p == nil {
		return false
	}
	if p.keyed {
		sum := sha256.Sum256([]byte(r.Header.Get(ProxyKeyHeader)))
		if subtle.ConstantTimeCompare(sum[:], p.key[:]) == 1 {
			return true
		}
	}
	return p.contains(peer(r))
}

// Client returns the address r comes from: the peer, unless the peer is a
// trusted proxy; then X-Forwarded-For is read from the right (each proxy
// appends the address it saw) and the first address that is not itself a
// trusted proxy is the client. Entries left of it were written by the client
// or by untrusted hops and are ignored, so a client cannot choose its
// address by sending the header. A malformed entry stops the walk at the
// last trustworthy address.
func (p *Proxies) Client(r *http.Request) netip.Addr {
	client := peer(r)
	if !p.Trusted(r) {
		return client
	}
	fwd := r.Header.Values("X-Forwarded-For")
	for i := len(fwd) - 1; i >= 0; i-- {
		parts := strings.Split(fwd[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client
			}
			client = a.Unmap().WithZone("")
			if !p.contains(client) {
				return client
			}
		}
	}
	return client
}

// ClientIP is Client as text ("" when the peer is not an address).
func (p *Proxies) ClientIP(r *http.Request) string {
	if a := p.Client(r); a.IsValid() {
		return a.String()
	}
	return ""
}

// ClientKey is the key under which per-client limits count r: the client's
// IPv4 address, or its IPv6 /64 (one site's hosts share a /64, and each
// host can pick any address in it, so a per-address limit would be no
// limit at all).
func (p *Proxies) ClientKey(r *http.Request) string {
	a := p.Client(r)
	switch {
	case !a.IsValid():
		return r.RemoteAddr
	case a.Is6():
		pre, _ := a.Prefix(64)
		return pre.String()
	default:
		return a.String()
	}
}

// HTTPS reports whether r reached us over TLS: directly, or through a
// trusted proxy that says so in X-Forwarded-Proto.
func (p *Proxies) HTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !p.Trusted(r) {
		return false
	}
	proto := r.Header.Values("X-Forwarded-Proto")
	if len(proto) == 0 {
		return false
	}
	last := proto[len(proto)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}
