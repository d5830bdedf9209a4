package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// listener is one bound address of a front end.
type listener struct {
	name string // "smtp", "imaps"…
	env  string // the variable that sets it
	ln   net.Listener
}

// bind opens the address of one front end. An empty address leaves it off. A
// default privileged port that cannot be bound for lack of privilege falls back
// to that port + 10000, so the quick start works for any user; an address given
// explicitly that cannot be bound is an error that names the variable to change.
func bind(name, env, addr string, explicit bool) (*listener, error) {
	return bindWith(net.Listen, name, env, addr, explicit)
}

func bindWith(listen func(network, addr string) (net.Listener, error), name, env, addr string, explicit bool) (*listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := listen("tcp", addr)
	if err == nil {
		return &listener{name: name, env: env, ln: ln}, nil
	}
	host, port, perr := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if !explicit && perr == nil && p > 0 && p < 1024 && errors.Is(err, syscall.EACCES) {
		alt := net.JoinHostPort(host, strconv.Itoa(p+10000))
		if ln, err2 := listen("tcp", alt); err2 == nil {
			return &listener{name: name, env: env, ln: ln}, nil
		}
	}
	return nil, fmt.Errorf("%s: cannot listen on %q (%v); set %s to another address, or to an empty value to turn it off", name, addr, err, env)
}
