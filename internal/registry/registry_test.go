package registry

import (
	"slices"
	"strings"
	"testing"
)

type conf struct{ name string }

func TestRegistry(t *testing.T) {
	r := New[*conf]("sink")
	r.Register("b", func() *conf { return &conf{"b"} })
	r.Register("a", func() *conf { return &conf{"a"} })
	if got := r.Types(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Types = %v", got)
	}
	c1, err := r.New("a")
	if err != nil || c1.name != "a" {
		t.Fatalf("New(a) = %v, %v", c1, err)
	}
	c2, _ := r.New("a")
	if c1 == c2 {
		t.Fatal("New returned the same config twice")
	}
	_, err = r.New("c")
	if err == nil || !strings.Contains(err.Error(), `unknown sink type "c" (known: [a b])`) {
		t.Fatalf("New(c): %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second Register of one name did not panic")
		}
	}()
	r.Register("a", func() *conf { return nil })
}
