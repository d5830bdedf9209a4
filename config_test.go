package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigDefaultsEnvAndFlags(t *testing.T) {
	c, err := loadConfig("serve", nil, io.Discard, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.SMTPAddr != ":25" || c.IMAPSAddr != ":993" || c.MaxMessageBytes != 25<<20 ||
		c.TokenTTL != time.Hour || c.QueueLifetime != 5*24*time.Hour || c.DatabaseURL != "sqlite:data/mailgate.db" {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = loadConfig("serve", []string{"--http-addr", "127.0.0.1:9999", "--max-message-bytes", "1MiB"}, io.Discard,
		env(map[string]string{"MAILGATE_HTTP_ADDR": ":1", "MAILGATE_SMTP_ADDR": "", "MAILGATE_TOKEN_TTL": "2h", "MAILGATE_DATA_DIR": "/tmp/x"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9999" || c.SMTPAddr != "" || c.TokenTTL != 2*time.Hour || c.MaxMessageBytes != 1<<20 ||
		c.DatabaseURL != "sqlite:/tmp/x/mailgate.db" || !c.explicit["MAILGATE_SMTP_ADDR"] || !c.explicit["MAILGATE_HTTP_ADDR"] {
		t.Fatalf("env and flags: %+v", c)
	}
	for _, bad := range []map[string]string{
		{"MAILGATE_TOKEN_TTL": "soon"},
		{"MAILGATE_MAX_MESSAGE_BYTES": "-1"},
		{"MAILGATE_LOG_LEVEL": "loud"},
		{"MAILGATE_TLS_CERT": "a.pem"},
		{"MAILGATE_ALLOW_INSECURE_AUTH": "perhaps"},
	} {
		if _, err := loadConfig("serve", nil, io.Discard, env(bad), nil); err == nil {
			t.Errorf("%v accepted", bad)
		} else if !strings.Contains(err.Error(), "MAILGATE_") {
			t.Errorf("%v: error %q does not name the variable", bad, err)
		}
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	code := run(t.Context(), []string{"serve", "--help"}, nil, &out, &out, env(nil))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range settings {
		if !strings.Contains(out.String(), "--"+s.flag) || !strings.Contains(out.String(), s.env) {
			t.Errorf("--help lacks %s / %s", s.flag, s.env)
		}
	}
	if !strings.Contains(out.String(), "default :25") {
		t.Errorf("--help lacks defaults:\n%s", out.String())
	}
}

func TestBindFallsBackFromPrivilegedDefaults(t *testing.T) {
	var asked []string
	listen := func(network, addr string) (net.Listener, error) {
		asked = append(asked, addr)
		if addr == ":25" {
			return nil, &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EACCES)}
		}
		return net.Listen(network, "127.0.0.1:0")
	}
	l, err := bindWith(listen, "smtp", "MAILGATE_SMTP_ADDR", ":25", false)
	if err != nil || l == nil || strings.Join(asked, ",") != ":25,:10025" {
		t.Fatalf("default privileged port: %v, asked %v", err, asked)
	}
	l.ln.Close()
	asked = nil
	_, err = bindWith(listen, "smtp", "MAILGATE_SMTP_ADDR", ":25", true)
	if err == nil || !strings.Contains(err.Error(), "MAILGATE_SMTP_ADDR") || len(asked) != 1 {
		t.Fatalf("explicit address: %v, asked %v", err, asked)
	}
	if l, err := bindWith(listen, "smtp", "MAILGATE_SMTP_ADDR", "", false); l != nil || err != nil {
		t.Fatal("empty address must turn the listener off")
	}
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	_, err = bind("imap", "MAILGATE_IMAP_ADDR", busy.Addr().String(), true)
	var opErr *net.OpError
	if err == nil || !strings.Contains(err.Error(), "MAILGATE_IMAP_ADDR") || errors.As(err, &opErr) {
		t.Fatalf("busy explicit address: %v", err)
	}
}

func TestParseBytesAndDuration(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "25MiB": 25 << 20, "1 GiB": 1 << 30, "10KB": 10000} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v", in, got, err)
		}
	}
	for in, want := range map[string]time.Duration{"5d": 120 * time.Hour, "90s": 90 * time.Second, "1h30m": 90 * time.Minute} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0", "x", "-5d", "1.5d"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
}
