package vaultsim

import (
	"container/list"
	"sync"
)

type hourID struct {
	org  string
	hour int64
}

// hourCache keeps recently served hours, bounded by bytes, so a walk over a
// huge history holds only a few rendered hours. Concurrent requests for an
// hour being built wait for the one build instead of repeating it.
type hourCache struct {
	mu    sync.Mutex
	max   int
	bytes int
	lru   *list.List // front = most recent; values *cacheEntry
	m     map[hourID]*list.Element
}

type cacheEntry struct {
	id    hourID
	ready chan struct{}
	data  *hourData
}

func newHourCache(maxBytes int) *hourCache {
	return &hourCache{max: maxBytes, lru: list.New(), m: map[hourID]*list.Element{}}
}

func (c *hourCache) get(id hourID, build func() *hourData) *hourData {
	c.mu.Lock()
	if el, ok := c.m[id]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		<-e.ready
		return e.data
	}
	e := &cacheEntry{id: id, ready: make(chan struct{})}
	el := c.lru.PushFront(e)
	c.m[id] = el
	c.mu.Unlock()

	e.data = build()
	close(e.ready)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[id] == el {
		c.bytes += e.data.size()
	}
	// Evict from the back, but keep at least the entry just built.
	for c.bytes > c.max && c.lru.Len() > 1 {
		back := c.lru.Back()
		be := back.Value.(*cacheEntry)
		select {
		case <-be.ready:
		default:
			// still building: move it forward and stop; it is tiny for now.
			c.lru.MoveToFront(back)
			return e.data
		}
		c.lru.Remove(back)
		delete(c.m, be.id)
		c.bytes -= be.data.size()
	}
	return e.data
}
