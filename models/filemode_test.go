package models_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// wantMode fails the test unless path exists with exactly the permissions want.
func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
	}
}

// TestSQLiteFilesPrivate: the SQLite database (password hashes, the JWT secret,
// mail) and its -wal and -shm are the owner's only, and so is the directory
// made for them.
func TestSQLiteFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db := filepath.Join(dir, "mailgate.db")
	s := modelstest.OpenIdle(t, "sqlite:"+db) // migrated: written to, in WAL mode
	if _, err := s.CreateDomain(context.Background(), "example.com", ""); err != nil {
		t.Fatal(err)
	}
	wantMode(t, dir, 0o700)
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		wantMode(t, p, 0o600)
	}
	s.Close()

	// A -wal left open to others beside a private database is narrowed too.
	if _, err := os.Stat(db + "-wal"); os.IsNotExist(err) {
		os.WriteFile(db+"-wal", nil, 0o644) //nolint:errcheck // checked by the Chmod
	}
	if err := os.Chmod(db+"-wal", 0o644); err != nil {
		t.Fatal(err)
	}
	s3, err := models.Open(context.Background(), "sqlite:"+db, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantMode(t, db+"-wal", 0o600)
	s3.Close()

	// A database an older version left open to others is narrowed when opened.
	old := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	s2, err := models.Open(context.Background(), "sqlite:"+old, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.DB().Exec("CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, old + "-wal", old + "-shm"} {
		wantMode(t, p, 0o600)
	}
}
