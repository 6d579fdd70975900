package source

import "testing"

func TestTailCursor(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string
		ok         bool
	}{
		{"envelope last", `{"data":[{"id":"a"}],"next_cursor":"c2"}`, "c2", true},
		{"spaces", "{\"data\":[],\n  \"next_cursor\" :\t \"c 2\"\n}", "c 2", true},
		{"escapes", `{"data":[],"next_cursor":"a\"b\\c\u00e9"}`, "a\"b\\cé", true},
		{"null", `{"data":[],"next_cursor":null}`, "", false},
		{"number", `{"data":[],"next_cursor":42}`, "", false},
		{"empty", `{"data":[],"next_cursor":""}`, "", false},
		{"absent", `{"data":[{"id":"a"}]}`, "", false},
		{"truncated", `{"data":[],"next_cursor":"abc`, "", false},
		{"escaped key inside a string is not a key", `{"data":[{"d":"x \"next_cursor\":\"no\""}]}`, "", false},
		// The envelope first and a nested key last: the guess is the nested
		// value. It is wrong, and the walk discards it (TestPrefetchWrongGuess).
		{"nested last", `{"next_cursor":"real","data":[{"detail":{"next_cursor":"nested"}}]}`, "nested", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tailCursor([]byte(tc.body), "next_cursor")
			if got != tc.want || ok != tc.ok {
				t.Fatalf("tailCursor = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
