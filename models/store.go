// Package models is mailgate's store: the gorm models, the queries over them and
// the notices that tell other sessions and instances that something changed.
//
// Two dialects stand behind one behaviour: PostgreSQL for production (several
// instances may share it; notices travel by LISTEN/NOTIFY) and an embedded SQLite
// file for a zero-setup start (one process; notices travel in memory).
package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect is the kind of database behind a Store.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Options tune how a Store is opened.
type Options struct {
	// MaxConns caps the PostgreSQL pool (0: 20). One connection is held for LISTEN.
	MaxConns int
	Logger   *slog.Logger
}

// Store is the handle every layer uses. A Store returned by Open is safe for
// concurrent use; the copy handed to a Tx callback is bound to that transaction
// and must not outlive it.
type Store struct {
	db      *gorm.DB
	shared  *shared
	pending *[]string // topics to announce after commit (SQLite, inside Tx)
}

type shared struct {
	dialect Dialect
	sqlDB   *sql.DB
	pool    *pgxpool.Pool // PostgreSQL only
	log     *slog.Logger
	hub     *hub
	once    sync.Once // starts the PostgreSQL listener
	stop    context.CancelFunc
	writeMu sync.Mutex // SQLite: one writer at a time, in process, instead of busy retries

	committerOnce sync.Once             // starts the group-commit goroutines (deliver.go)
	deliveries    chan *pendingDelivery // to them
	closed        chan struct{}         // closed by Close
	lastDelivery  atomic.Int64          // UnixNano of the last committed delivery batch
}

// ParseURL tells the dialect of a database URL and the DSN its driver wants.
// Accepted: postgres://…, postgresql://…, sqlite:PATH, sqlite://PATH, file:PATH.
func ParseURL(raw string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite://"):
		return SQLite, strings.TrimPrefix(raw, "sqlite://"), nil
	case strings.HasPrefix(raw, "sqlite:"):
		return SQLite, strings.TrimPrefix(raw, "sqlite:"), nil
	case strings.HasPrefix(raw, "file:"):
		return SQLite, strings.TrimPrefix(raw, "file:"), nil
	}
	return "", "", fmt.Errorf("database URL %q: want postgres://… or sqlite:PATH", redactURL(raw))
}

// Open connects to the database named by rawURL. It does not migrate.
func Open(ctx context.Context, rawURL string, opt Options) (*Store, error) {
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := &gorm.Config{
		Logger:                                   logger.Discard,
		TranslateError:                           true,
		SkipDefaultTransaction:                   true,
		DisableForeignKeyConstraintWhenMigrating: true,
		NowFunc:                                  func() time.Time { return time.Now().UTC() },
	}
	sh := &shared{dialect: dialect, log: opt.Logger, hub: newHub(),
		deliveries: make(chan *pendingDelivery, 1024), closed: make(chan struct{})}
	var gdb *gorm.DB
	switch dialect {
	case Postgres:
		pcfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("parse database URL: %w", err)
		}
		pcfg.MaxConns = int32(opt.MaxConns)
		if pcfg.MaxConns <= 0 {
			pcfg.MaxConns = 20
		}
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, fmt.Errorf("connect to postgres: %w", err)
		}
		sh.pool = pool
		sh.sqlDB = stdlib.OpenDBFromPool(pool)
		gdb, err = gorm.Open(postgres.New(postgres.Config{Conn: sh.sqlDB}), cfg)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("open postgres: %w", err)
		}
	case SQLite:
		path, query, _ := strings.Cut(dsn, "?")
		if path == "" {
			return nil, errors.New("sqlite database URL has no path")
		}
		if path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("create directory for %s: %w", path, err)
			}
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("sqlite options %q: %w", query, err)
		}
		// WAL lets readers run beside the one writer; synchronous=FULL makes each
		// commit durable before mail is acknowledged.
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(15000)", "foreign_keys(1)", "synchronous(FULL)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		full := "file:" + path + "?" + q.Encode()
		gdb, err = gorm.Open(sqlite.Open(full), cfg)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sh.sqlDB, err = gdb.DB()
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sh.sqlDB.SetMaxOpenConns(8)
		sh.sqlDB.SetMaxIdleConns(8)
		sh.sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{db: gdb, shared: sh}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Dialect reports which database is behind the store.
func (s *Store) Dialect() Dialect { return s.shared.dialect }

// DB is the database/sql handle, for migrations.
func (s *Store) DB() *sql.DB { return s.shared.sqlDB }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.shared.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.shared.dialect, translate(err))
	}
	return nil
}

// Close stops the listener and closes every connection.
func (s *Store) Close() error {
	select {
	case <-s.shared.closed:
	default:
		close(s.shared.closed)
	}
	if s.shared.stop != nil {
		s.shared.stop()
	}
	err := s.shared.sqlDB.Close()
	if s.shared.pool != nil {
		s.shared.pool.Close()
	}
	return err
}

func (s *Store) conn(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// InTx reports whether s is bound to a transaction.
func (s *Store) InTx() bool { return s.pending != nil }

// Tx runs fn in one transaction. fn may run more than once: a PostgreSQL
// serialization failure or deadlock is retried, so fn must do nothing but
// database work through tx. Notices given to tx.Notify go out only on commit.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	if s.pending != nil {
		return fn(s) // already inside a transaction: join it
	}
	if s.shared.dialect == SQLite {
		// SQLite takes one writer at a time anyway; queueing writers here in
		// process is cheaper and fairer than letting them spin on SQLITE_BUSY.
		s.shared.writeMu.Lock()
		defer s.shared.writeMu.Unlock()
	}
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var topics []string
		err = s.db.WithContext(ctx).Transaction(func(gtx *gorm.DB) error {
			return fn(&Store{db: gtx, shared: s.shared, pending: &topics})
		})
		if err == nil {
			if s.shared.dialect == SQLite {
				s.shared.hub.publish(topics...)
			}
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return translate(err)
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// scan runs a query and scans its rows into dest (a struct, a slice, or a
// scalar for one row). It is Raw(...).Scan without gorm's formatting of the
// whole statement for its logger, which Scan does even when nothing is logged
// and which costs more than the query on multi-row statements.
func (s *Store) scan(ctx context.Context, dest any, query string, args ...any) error {
	db := s.conn(ctx)
	rows, err := db.Raw(query, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		if err := db.ScanRows(rows, dest); err != nil {
			return err
		}
	}
	return rows.Err()
}
