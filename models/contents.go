package models

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"
)

// ChunkSize is the size of the pieces content is stored in: large enough that a
// typical message is one row, small enough that a 25 MB message never has to be
// in memory at once.
const ChunkSize = 256 << 10

// blob passes bytes to SQL as one value: gorm would expand a bare []byte that
// follows "(" into a list.
type blob []byte

func (b blob) Value() (driver.Value, error) { return []byte(b), nil }

// PutContent stores content (c.SHA256, c.Size and the metadata must be set) and
// its bytes, read from body, unless content with the same digest is already
// stored. It returns the content's id. It must run inside a transaction, the one
// that references the content, so that the sweeper cannot remove it in between.
func (s *Store) PutContent(ctx context.Context, c *Content, body io.Reader) (int64, error) {
	if !s.InTx() {
		return 0, errors.New("PutContent must run inside a transaction")
	}
	d := &Delivery{Contents: []ContentPut{{Content: *c, Body: func() io.Reader { return body }}}}
	ids, err := s.putContents(ctx, []*Delivery{d}, []error{nil})
	if err != nil {
		return 0, err
	}
	c.ID = ids[0][0]
	return c.ID, nil
}

// GetContent loads a content's metadata (not its bytes).
func (s *Store) GetContent(ctx context.Context, id int64) (*Content, error) {
	var c Content
	if err := s.conn(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(fmt.Sprintf("content %d", id))
		}
		return nil, fmt.Errorf("get content %d: %w", id, err)
	}
	return &c, nil
}

// OpenContent returns a reader of a content's bytes from offset on. It loads one
// chunk at a time, so memory stays flat however large the message.
func (s *Store) OpenContent(ctx context.Context, id int64, size int64, chunkSize int, offset int64) io.Reader {
	if offset > size {
		offset = size
	}
	return &contentReader{ctx: ctx, s: s, id: id, size: size, chunk: int64(chunkSize), pos: offset}
}

type contentReader struct {
	ctx   context.Context
	s     *Store
	id    int64
	size  int64
	chunk int64
	pos   int64
	buf   []byte // the chunk holding pos, starting at bufAt
	bufAt int64
}

func (r *contentReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.buf == nil || r.pos < r.bufAt || r.pos >= r.bufAt+int64(len(r.buf)) {
		seq := r.pos / r.chunk
		var data []byte
		err := r.s.conn(r.ctx).Raw(`SELECT data FROM content_chunks WHERE content_id = ? AND seq = ?`, r.id, seq).Row().Scan(&data)
		if err != nil {
			return 0, fmt.Errorf("read chunk %d of content %d: %w", seq, r.id, translate(err))
		}
		if len(data) == 0 {
			return 0, fmt.Errorf("chunk %d of content %d is empty", seq, r.id)
		}
		r.buf, r.bufAt = data, seq*r.chunk
	}
	n := copy(p, r.buf[r.pos-r.bufAt:])
	r.pos += int64(n)
	return n, nil
}

// SweepContents removes content that no message or queue entry references and
// that was last used before olderThan. It returns how many it removed.
func (s *Store) SweepContents(ctx context.Context, olderThan time.Time) (int64, error) {
	res := s.conn(ctx).Exec(`DELETE FROM contents WHERE last_used_at < ?
		AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.content_id = contents.id)
		AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.content_id = contents.id)`, olderThan.UTC())
	if res.Error != nil {
		return 0, fmt.Errorf("sweep contents: %w", translate(res.Error))
	}
	return res.RowsAffected, nil
}
