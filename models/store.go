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
// and must not outlive it. The owner of a Store runs its background work with
// Run and ends it with Close.
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
	writeMu sync.Mutex // SQLite: one writer at a time, in process, instead of busy retries

	// Deliveries (deliver.go). deliverMu is held shared by every Deliver while
	// it hands its delivery over or commits it inline, and exclusively to change
	// state: so once shutdown has set stateStopped under it, no Deliver is still
	// sending on deliveries (which can then be closed, for the committers to
	// drain) or writing inline (so the database can be closed).
	deliverMu    sync.RWMutex
	state        runState              // under deliverMu
	stopping     atomic.Bool           // set before shutdown waits for deliverMu: Deliver fails at once
	deliveries   chan *pendingDelivery // to the group committers; closed by shutdown once they run
	committers   sync.WaitGroup
	lastDelivery atomic.Int64 // UnixNano of the last committed delivery batch

	// The PostgreSQL listener (notify.go), started by Run or by the first
	// Subscribe, stopped by shutdown.
	listenMu      sync.Mutex
	listenReady   chan struct{}      // closed once LISTEN is in place or the listener ended; nil: not started
	stopListen    context.CancelFunc // under listenMu
	listenStopped bool               // under listenMu: shutdown has begun, start no listener
	listenWait    sync.Once          // the first Subscribe waits for listenReady
	listeners     sync.WaitGroup

	goroutines atomic.Int32  // owned goroutines alive (committers, listener)
	runCalled  atomic.Bool   // Run has been called
	stopOnce   sync.Once     // shutdown
	closed     chan struct{} // closed by Close: wakes Run
	closeOnce  sync.Once
	closeErr   error
}

// runState is where a store is in its life, as Deliver sees it.
type runState int

const (
	stateIdle    runState = iota // Run not called (yet): Deliver commits inline
	stateRunning                 // Run runs: Deliver hands over to the group committers
	stateStopped                 // Run is shutting down or ended, or Close was called: Deliver fails
)

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
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("sqlite options %q: %w", query, err)
		}
		if path != ":memory:" && q.Get("mode") != "memory" {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("create directory for %s: %w", path, err)
			}
			if err := privateFile(path, q.Get("mode") == "ro", opt.Logger); err != nil {
				return nil, err
			}
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

// privateFile makes the SQLite file readable by its owner only: it holds
// password hashes, the JWT secret and mail. A new file is created 0600 before
// SQLite opens it (SQLite gives its -wal and -shm files the database's mode);
// an existing one open to others is narrowed to 0600, with its -wal and -shm.
func privateFile(path string, readOnly bool, log *slog.Logger) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !readOnly:
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return nil // created by someone else meanwhile: theirs to set
		}
		if err != nil {
			return fmt.Errorf("create sqlite database %s: %w", path, err)
		}
		return f.Close()
	case err != nil || readOnly || !fi.Mode().IsRegular():
		return nil // SQLite reports what is wrong with the file, if anything
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("restrict %s to its owner: %w", p, err)
		}
		log.Warn("the database file was open to other users: now readable by its owner only", "path", p,
			"was", fi.Mode().Perm().String())
	}
	return nil
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

// Run runs the store's background work until ctx ends or Close is called: the
// group committers that Deliver hands deliveries to and, on PostgreSQL, the
// listener that brings notices to Subscribe. The owner of the store runs it for
// as long as the store serves, e.g. in the server's errgroup.
//
// When ctx ends, Run shuts down: from then on Deliver fails at once with an
// error wrapping ErrTemporary; every delivery already handed over is committed
// (or fails) and answered, none is lost or left waiting; then the listener stops.
// Run returns nil once every goroutine it owned has ended. The store stays open
// for everything but deliveries and notices until Close.
//
// A store that is never run still works (CLI commands, some tests): Deliver
// commits each delivery inline, without group commit, and Subscribe starts the
// listener itself. Run may be called once; after Close it returns nil at once.
// Close may be called before, during (it then does the shutdown and Run returns)
// or after Run.
func (s *Store) Run(ctx context.Context) error {
	sh := s.shared
	if s.pending != nil {
		return errors.New("run store: the store is bound to a transaction")
	}
	if !sh.runCalled.CompareAndSwap(false, true) {
		return errors.New("run store: Run was called before")
	}
	sh.deliverMu.Lock()
	if sh.state != stateIdle { // closed before Run: nothing to run
		sh.deliverMu.Unlock()
		return nil
	}
	sh.state = stateRunning
	s.startCommitters()
	sh.deliverMu.Unlock()
	if sh.dialect == Postgres {
		s.startListener()
	}
	select {
	case <-ctx.Done():
	case <-sh.closed:
	}
	s.shutdown()
	return nil
}

// shutdown stops deliveries, lets the committers drain what was handed over,
// stops the listener and waits for every goroutine the store owns. Concurrent
// callers (Run's end and Close) all return once it is done.
func (s *Store) shutdown() {
	sh := s.shared
	sh.stopOnce.Do(func() {
		sh.stopping.Store(true)
		sh.deliverMu.Lock()
		wasRunning := sh.state == stateRunning
		sh.state = stateStopped
		sh.deliverMu.Unlock()
		// No Deliver is sending now, nor will one: closing the channel lets the
		// committers take what is in it and then end.
		if wasRunning {
			close(sh.deliveries)
			sh.committers.Wait()
		}
		// After the committers: notices of their last batches may still reach
		// subscribers in this process.
		sh.listenMu.Lock()
		sh.listenStopped = true
		stop := sh.stopListen
		sh.listenMu.Unlock()
		if stop != nil {
			stop()
		}
		sh.listeners.Wait()
	})
}

// spawn runs fn in a goroutine the store owns and waits for (with wg).
func (sh *shared) spawn(wg *sync.WaitGroup, fn func()) {
	sh.goroutines.Add(1)
	wg.Go(func() {
		defer sh.goroutines.Add(-1)
		fn()
	})
}

// Close shuts the store down as Run does at its end (if Run is running, Close
// does it and Run returns), then closes every connection. Deliveries accepted
// before are committed first. Close is idempotent: later calls return the
// result of the first.
func (s *Store) Close() error {
	sh := s.shared
	sh.closeOnce.Do(func() {
		close(sh.closed)
		s.shutdown()
		sh.closeErr = sh.sqlDB.Close()
		if sh.pool != nil {
			sh.pool.Close()
		}
	})
	return sh.closeErr
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
