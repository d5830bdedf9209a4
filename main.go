// Command mailgate is a mail server with a REST/JSON API: SMTP, IMAP and POP3 for
// mail clients and other servers, HTTP/JSON for web apps and admins, all over one
// database (PostgreSQL, or an embedded SQLite file by default).
//
//	mailgate serve            run the server (migrates the database first)
//	mailgate migrate up|down|status
//	mailgate passwd EMAIL     set a user's password, read from stdin
//	mailgate version
//
//	@title						mailgate API
//	@version					1.0
//	@description				Manage domains, users and groups, and read and send mail, over JSON. Every error has the body {"error":{"code":"…","message":"…"}}. Lists are {"items":[…],"next_cursor":"…"}: pass next_cursor as ?cursor= for the next page. Every response carries X-Request-ID.
//	@license.name				MIT
//	@BasePath					/
//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				A token from POST /api/v1/auth/login, sent as "Bearer <token>".
package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/migrations"
	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
)

//go:generate go tool swag init --quiet -g main.go -o docs --outputTypes go,json,yaml --parseDependency=false
//go:generate go run ./docs/openapigen -in docs/swagger.json -out openapi.yaml

//go:embed openapi.yaml
var openapiYAML []byte

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv))
}

const usage = `mailgate — a mail server with a REST/JSON API

Usage:
  mailgate serve [flags]           run the server (see: mailgate serve --help)
  mailgate migrate up|down|status  apply, roll back one, or list database migrations
  mailgate passwd EMAIL            set a user's password, read from stdin
  mailgate version                 print the version
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr, lookupEnv)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, stderr, lookupEnv)
	case "passwd":
		err = passwd(ctx, args[1:], stdin, stdout, stderr, lookupEnv)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "mailgate", versionString())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mailgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailgate:", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			return "dev-" + rev[:min(12, len(rev))] + dirty
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}

// dbFlags are the settings the database commands take.
var dbFlags = []string{"database-url", "data-dir", "database-max-conns", "log-level", "log-format"}

// openStore opens the configured database.
func openStore(ctx context.Context, cfg *Config, log *slog.Logger) (*models.Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s (MAILGATE_DATA_DIR): %w", cfg.DataDir, err)
	}
	store, err := models.Open(ctx, cfg.DatabaseURL, models.Options{MaxConns: cfg.DatabaseMaxConns, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open database (MAILGATE_DATABASE_URL): %w", err)
	}
	return store, nil
}

func migrationsFor(store *models.Store, log *slog.Logger) (*migrations.Runner, error) {
	d := migrations.SQLite
	if store.Dialect() == models.Postgres {
		d = migrations.Postgres
	}
	return migrations.New(store.DB(), d, log)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	if len(args) == 0 {
		return errors.New("migrate needs up, down or status")
	}
	sub := args[0]
	cfg, err := loadConfig("migrate "+sub, args[1:], stderr, lookupEnv, dbFlags)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := migrationsFor(store, nil)
	if err != nil {
		return err
	}
	switch sub {
	case "up":
		vs, err := r.Up(ctx)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			fmt.Fprintln(stdout, "database is up to date")
		}
		for _, v := range vs {
			fmt.Fprintf(stdout, "applied %05d\n", v)
		}
	case "down":
		v, err := r.Down(ctx)
		if err != nil {
			return err
		}
		if v == 0 {
			fmt.Fprintln(stdout, "nothing to roll back")
		} else {
			fmt.Fprintf(stdout, "rolled back %05d\n", v)
		}
	case "status":
		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range st {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Name)
		}
	default:
		return fmt.Errorf("unknown migrate command %q: want up, down or status", sub)
	}
	return nil
}

func passwd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	var email string
	var rest []string
	for _, a := range args {
		if email == "" && !strings.HasPrefix(a, "-") {
			email = a
			continue
		}
		rest = append(rest, a)
	}
	cfg, err := loadConfig("passwd EMAIL", rest, stderr, lookupEnv, dbFlags)
	if err != nil {
		return err
	}
	if email == "" {
		return errors.New("passwd needs the user's address: mailgate passwd EMAIL < password-file")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := migrationsFor(store, nil)
	if err != nil {
		return err
	}
	if _, err := r.Up(ctx); err != nil {
		return err
	}
	u, err := store.UpdateUser(ctx, email, models.UserPatch{PasswordHash: &hash})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password of %s changed; its earlier API tokens no longer work\n", u.Email)
	return nil
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(cfg.LogLevel)) //nolint:errcheck // checked in Config.check
	opt := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opt)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opt)
	}
	return slog.New(api.LogHandler{Handler: h})
}
