package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of mailgate. Each is an environment variable MAILGATE_*
// and a flag of `mailgate serve`; a flag wins over the variable.
type Config struct {
	DatabaseURL       string
	DatabaseMaxConns  int
	DataDir           string
	Hostname          string
	HTTPAddr          string
	HTTPSAddr         string
	SMTPAddr          string
	SubmissionAddr    string
	SubmissionsAddr   string
	POP3Addr          string
	POP3SAddr         string
	IMAPAddr          string
	IMAPSAddr         string
	TLSCert           string
	TLSKey            string
	JWTSecret         string
	TokenTTL          time.Duration
	AdminEmail        string
	AdminPassword     string
	MaxMessageBytes   int64
	MaxRecipients     int
	AllowInsecureAuth bool
	MaxConnections    int
	MaxConnsPerIP     int
	LoginTimeout      time.Duration
	IdleTimeout       time.Duration
	FailuresPerNet    int
	FailuresPerAcct   int
	FailureWindow     time.Duration
	AuthCacheTTL      time.Duration
	RelayHost         string
	RelayUsername     string
	RelayPassword     string
	TransportMap      string
	QueueLifetime     time.Duration
	QueueRetryMin     time.Duration
	QueueRetryMax     time.Duration
	RateLimit         float64
	LoginRateLimit    float64
	TrustedProxies    string
	LogLevel          string
	LogFormat         string

	explicit map[string]bool // settings given by flag or environment, by env name
}

// setting describes one configuration value.
type setting struct {
	env, flag, def, usage string
	bind                  func(c *Config, fs *flag.FlagSet, name, def, usage string)
}

func str(p func(*Config) *string) func(*Config, *flag.FlagSet, string, string, string) {
	return func(c *Config, fs *flag.FlagSet, name, def, usage string) { fs.StringVar(p(c), name, def, usage) }
}

func boolean(p func(*Config) *bool) func(*Config, *flag.FlagSet, string, string, string) {
	return func(c *Config, fs *flag.FlagSet, name, def, usage string) {
		b, _ := strconv.ParseBool(def)
		fs.BoolVar(p(c), name, b, usage)
	}
}

func integer(p func(*Config) *int) func(*Config, *flag.FlagSet, string, string, string) {
	return func(c *Config, fs *flag.FlagSet, name, def, usage string) {
		fs.Func(name, usage, func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("want a whole number >= 0")
			}
			*p(c) = n
			return nil
		})
		*p(c), _ = strconv.Atoi(def)
	}
}

func bytesize(p func(*Config) *int64) func(*Config, *flag.FlagSet, string, string, string) {
	return func(c *Config, fs *flag.FlagSet, name, def, usage string) {
		fs.Func(name, usage, func(v string) error {
			n, err := parseBytes(v)
			if err != nil {
				return err
			}
			*p(c) = n
			return nil
		})
		*p(c), _ = parseBytes(def)
	}
}

func number(p func(*Config) *float64) func(*Config, *flag.FlagSet, string, string, string) {
	return func(c *Config, fs *flag.FlagSet, name, def, usage string) {
		fs.Func(name, usage, func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return fmt.Errorf("want a number >= 0")
			}
			*p(c) = f
			return nil
		})
		*p(c), _ = strconv.ParseFloat(def, 64)
	}
}

func duration(p func(*Config) *time.Duration) func(*Config, *flag.FlagSet, string, string, string) {
	return func(c *Config, fs *flag.FlagSet, name, def, usage string) {
		fs.Func(name, usage, func(v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return err
			}
			*p(c) = d
			return nil
		})
		*p(c), _ = parseDuration(def)
	}
}

// settings is the one table of configuration.
var settings = []setting{
	{"MAILGATE_DATABASE_URL", "database-url", "", "database: postgres://user:pass@host/db or sqlite:PATH (empty: sqlite:<data-dir>/mailgate.db)", str(func(c *Config) *string { return &c.DatabaseURL })},
	{"MAILGATE_DATABASE_MAX_CONNS", "database-max-conns", "20", "PostgreSQL connection pool size", integer(func(c *Config) *int { return &c.DatabaseMaxConns })},
	{"MAILGATE_DATA_DIR", "data-dir", "./data", "directory for the SQLite file, the generated TLS certificate and spooled large messages", str(func(c *Config) *string { return &c.DataDir })},
	{"MAILGATE_HOSTNAME", "hostname", "localhost", "this server's host name: SMTP greeting, Received headers, TLS certificate, default admin domain", str(func(c *Config) *string { return &c.Hostname })},
	{"MAILGATE_HTTP_ADDR", "http-addr", ":8080", "HTTP API listen address, plaintext: for localhost and reverse proxies (empty: off)", str(func(c *Config) *string { return &c.HTTPAddr })},
	{"MAILGATE_HTTPS_ADDR", "https-addr", ":8443", "HTTPS API listen address, with the mail ports' TLS certificate (empty: off)", str(func(c *Config) *string { return &c.HTTPSAddr })},
	{"MAILGATE_SMTP_ADDR", "smtp-addr", ":25", "SMTP (mail from other servers) listen address (empty: off)", str(func(c *Config) *string { return &c.SMTPAddr })},
	{"MAILGATE_SUBMISSION_ADDR", "submission-addr", ":587", "SMTP submission with STARTTLS listen address (empty: off)", str(func(c *Config) *string { return &c.SubmissionAddr })},
	{"MAILGATE_SUBMISSIONS_ADDR", "submissions-addr", ":465", "SMTP submission with implicit TLS listen address (empty: off)", str(func(c *Config) *string { return &c.SubmissionsAddr })},
	{"MAILGATE_POP3_ADDR", "pop3-addr", ":110", "POP3 with STLS listen address (empty: off)", str(func(c *Config) *string { return &c.POP3Addr })},
	{"MAILGATE_POP3S_ADDR", "pop3s-addr", ":995", "POP3 with implicit TLS listen address (empty: off)", str(func(c *Config) *string { return &c.POP3SAddr })},
	{"MAILGATE_IMAP_ADDR", "imap-addr", ":143", "IMAP with STARTTLS listen address (empty: off)", str(func(c *Config) *string { return &c.IMAPAddr })},
	{"MAILGATE_IMAPS_ADDR", "imaps-addr", ":993", "IMAP with implicit TLS listen address (empty: off)", str(func(c *Config) *string { return &c.IMAPSAddr })},
	{"MAILGATE_TLS_CERT", "tls-cert", "", "TLS certificate chain, PEM (empty: a self-signed certificate kept in the data dir)", str(func(c *Config) *string { return &c.TLSCert })},
	{"MAILGATE_TLS_KEY", "tls-key", "", "TLS private key, PEM", str(func(c *Config) *string { return &c.TLSKey })},
	{"MAILGATE_JWT_SECRET", "jwt-secret", "", "secret that signs API tokens (empty: generated once and kept in the database)", str(func(c *Config) *string { return &c.JWTSecret })},
	{"MAILGATE_TOKEN_TTL", "token-ttl", "1h", "lifetime of API tokens", duration(func(c *Config) *time.Duration { return &c.TokenTTL })},
	{"MAILGATE_ADMIN_EMAIL", "admin-email", "", "address of the admin created on first start (empty: admin@<hostname>)", str(func(c *Config) *string { return &c.AdminEmail })},
	{"MAILGATE_ADMIN_PASSWORD", "admin-password", "", "password of that admin (empty: generated and printed once in the log)", str(func(c *Config) *string { return &c.AdminPassword })},
	{"MAILGATE_MAX_MESSAGE_BYTES", "max-message-bytes", "25MiB", "largest message accepted (bytes, or with KiB/MiB/GiB)", bytesize(func(c *Config) *int64 { return &c.MaxMessageBytes })},
	{"MAILGATE_MAX_RECIPIENTS", "max-recipients", "100", "most recipients of one SMTP message", integer(func(c *Config) *int { return &c.MaxRecipients })},
	{"MAILGATE_ALLOW_INSECURE_AUTH", "allow-insecure-auth", "false", "allow password logins without TLS from any address (loopback is always allowed)", boolean(func(c *Config) *bool { return &c.AllowInsecureAuth })},
	{"MAILGATE_MAX_CONNECTIONS", "max-connections", "1000", "most connections open at once on each mail server: each SMTP port, IMAP (both ports), POP3 (both ports); over it: refused in the protocol's terms", integer(func(c *Config) *int { return &c.MaxConnections })},
	{"MAILGATE_MAX_CONNECTIONS_PER_IP", "max-connections-per-ip", "50", "most connections open at once from one IPv4 address or IPv6 /64, on each mail server", integer(func(c *Config) *int { return &c.MaxConnsPerIP })},
	{"MAILGATE_LOGIN_TIMEOUT", "login-timeout", "1m", "time a mail client has from connecting to logging in (IMAP, POP3, SMTP submission)", duration(func(c *Config) *time.Duration { return &c.LoginTimeout })},
	{"MAILGATE_IDLE_TIMEOUT", "idle-timeout", "", "time a mail client may go without completing a command (empty: each protocol's RFC minimum: SMTP 5m, POP3 10m, IMAP 30m)", duration(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{"MAILGATE_LOGIN_FAILURES_PER_NETWORK", "login-failures-per-network", "20", "failed logins one client network (IPv4 address, IPv6 /64) may make in the window, over all accounts and front ends; then its logins are refused until the window slides", integer(func(c *Config) *int { return &c.FailuresPerNet })},
	{"MAILGATE_LOGIN_FAILURES_PER_ACCOUNT", "login-failures-per-account", "10", "failed logins an account may have in the window from networks it has not logged in from lately; then logins from such networks are refused", integer(func(c *Config) *int { return &c.FailuresPerAcct })},
	{"MAILGATE_LOGIN_FAILURE_WINDOW", "login-failure-window", "15m", "the sliding window failed logins are counted in", duration(func(c *Config) *time.Duration { return &c.FailureWindow })},
	{"MAILGATE_AUTH_CACHE_TTL", "auth-cache-ttl", "5m", "how long a verified password is remembered (as a keyed hash, never the password) so that the user's next logins skip bcrypt; a password change, disable or delete takes effect at once on every instance; 0 turns the cache off", duration(func(c *Config) *time.Duration { return &c.AuthCacheTTL })},
	{"MAILGATE_RELAY_HOST", "relay-host", "", "smarthost host:port for all outbound mail (empty: deliver to each domain's MX)", str(func(c *Config) *string { return &c.RelayHost })},
	{"MAILGATE_RELAY_USERNAME", "relay-username", "", "user name at the smarthost", str(func(c *Config) *string { return &c.RelayUsername })},
	{"MAILGATE_RELAY_PASSWORD", "relay-password", "", "password at the smarthost", str(func(c *Config) *string { return &c.RelayPassword })},
	{"MAILGATE_TRANSPORT_MAP", "transport-map", "", "fixed routes for domains: domain=host:port,domain2=host:port", str(func(c *Config) *string { return &c.TransportMap })},
	{"MAILGATE_QUEUE_LIFETIME", "queue-lifetime", "5d", "how long outbound mail is retried before it bounces", duration(func(c *Config) *time.Duration { return &c.QueueLifetime })},
	{"MAILGATE_QUEUE_RETRY_MIN", "queue-retry-min", "1m", "wait before the first retry of outbound mail; it doubles with each retry", duration(func(c *Config) *time.Duration { return &c.QueueRetryMin })},
	{"MAILGATE_QUEUE_RETRY_MAX", "queue-retry-max", "1h", "longest wait between retries of outbound mail", duration(func(c *Config) *time.Duration { return &c.QueueRetryMax })},
	{"MAILGATE_RATE_LIMIT", "rate-limit", "100", "API requests per second allowed per client IP (0: no limit)", number(func(c *Config) *float64 { return &c.RateLimit })},
	{"MAILGATE_LOGIN_RATE_LIMIT", "login-rate-limit", "30", "API login attempts per minute allowed per client IP (0: no limit)", number(func(c *Config) *float64 { return &c.LoginRateLimit })},
	{"MAILGATE_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated proxy addresses/CIDRs whose X-Forwarded-For is believed", str(func(c *Config) *string { return &c.TrustedProxies })},
	{"MAILGATE_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"MAILGATE_LOG_FORMAT", "log-format", "text", "text or json", str(func(c *Config) *string { return &c.LogFormat })},
}

// loadConfig reads the environment (through lookupEnv, as os.LookupEnv) and then
// args (help and flag errors go to out), for the settings whose flag names are in only (nil: all). A variable set
// to the empty string counts as set: that is how a listener is turned off.
func loadConfig(cmd string, args []string, out io.Writer, lookupEnv func(string) (string, bool), only []string) (*Config, error) {
	c := &Config{explicit: map[string]bool{}}
	fs := flag.NewFlagSet("mailgate "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mailgate %s [flags]\n\nEvery flag can also be set by the environment variable named after it.\n\n", cmd)
		var lines []string
		fs.VisitAll(func(f *flag.Flag) {
			env := ""
			for _, s := range settings {
				if s.flag == f.Name {
					env = s.env
				}
			}
			def := f.DefValue
			for _, s := range settings {
				if s.flag == f.Name {
					def = s.def
				}
			}
			if def == "" {
				def = `""`
			}
			lines = append(lines, fmt.Sprintf("  --%-22s %-30s default %s\n        %s\n", f.Name, env, def, f.Usage))
		})
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprint(fs.Output(), l)
		}
	}
	want := map[string]bool{}
	for _, o := range only {
		want[o] = true
	}
	// Settings a command does not take still get their defaults, on a flag set
	// nobody parses, so that the checks below hold for every command.
	unused := flag.NewFlagSet("unused", flag.ContinueOnError)
	for _, s := range settings {
		if only != nil && !want[s.flag] {
			s.bind(c, unused, s.flag, s.def, s.usage)
			continue
		}
		s.bind(c, fs, s.flag, s.def, s.usage)
	}
	// The environment first, then the flags over it.
	for _, s := range settings {
		if only != nil && !want[s.flag] {
			continue
		}
		if v, ok := lookupEnv(s.env); ok {
			if err := fs.Set(s.flag, v); err != nil {
				return nil, fmt.Errorf("%s=%q: %v", s.env, v, err)
			}
			c.explicit[s.env] = true
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		for _, s := range settings {
			if s.flag == f.Name {
				c.explicit[s.env] = true
			}
		}
	})
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) check() error {
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "mailgate.db")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("MAILGATE_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("MAILGATE_LOG_FORMAT=%q: want text or json", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("MAILGATE_TLS_CERT and MAILGATE_TLS_KEY must be set together")
	}
	if c.TokenTTL <= 0 {
		return fmt.Errorf("MAILGATE_TOKEN_TTL must be positive")
	}
	if c.MaxMessageBytes <= 0 {
		return fmt.Errorf("MAILGATE_MAX_MESSAGE_BYTES must be positive")
	}
	return nil
}

// parseBytes reads 1048576, 512KiB, 25MiB, 1GiB (also KB/MB/GB as powers of 1000).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive size like 26214400 or 25MiB")
	}
	return n * mult, nil
}

// parseDuration reads Go durations (90s, 1h30m) and whole days (5d).
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("want a duration like 90s, 1h or 5d")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a duration like 90s, 1h or 5d")
	}
	return d, nil
}
