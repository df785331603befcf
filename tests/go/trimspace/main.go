// Command trimspace checks tests/data/trim.json (made by tests/data/trim.py, which knows
// nothing of Go's code) against Go's own trimming: every master and mixed case against
// bytes.TrimSpace, every well-formed key-file case against strings.TrimSpace.
// tests/vectors.rs runs it where Go is installed. It prints the number of cases and exits
// 1 when any differs.
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type testCase struct {
	Raw     string  `json:"raw"`
	Trimmed *string `json:"trimmed"`
	Key     *string `json:"key"`
}

func main() {
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(text, &data); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	checked, differ := 0, 0
	check := func(list string, trim func([]byte) []byte, want func(testCase) ([]byte, bool)) {
		var cases []testCase
		if err := json.Unmarshal(data[list], &cases); err != nil {
			fmt.Println(list, err)
			os.Exit(2)
		}
		for _, c := range cases {
			expected, ok := want(c)
			if !ok {
				continue
			}
			raw, _ := hex.DecodeString(c.Raw)
			checked++
			if got := trim(raw); !bytes.Equal(got, expected) {
				differ++
				fmt.Printf("%s: %x trims to %x in Go, %x in trim.json\n", list, raw, got, expected)
			}
		}
	}
	hexField := func(f func(testCase) *string) func(testCase) ([]byte, bool) {
		return func(c testCase) ([]byte, bool) {
			v := f(c)
			if v == nil {
				return nil, false
			}
			b, err := hex.DecodeString(*v)
			return b, err == nil
		}
	}
	plainField := func(f func(testCase) *string) func(testCase) ([]byte, bool) {
		return func(c testCase) ([]byte, bool) {
			v := f(c)
			if v == nil {
				return nil, false
			}
			return []byte(*v), true
		}
	}
	trimmed := func(c testCase) *string { return c.Trimmed }
	key := func(c testCase) *string { return c.Key }
	check("masters", bytes.TrimSpace, hexField(trimmed))
	check("mixed", bytes.TrimSpace, hexField(trimmed))
	check("key_files", func(b []byte) []byte { return []byte(strings.TrimSpace(string(b))) }, plainField(key))
	fmt.Printf("%d cases, %d differ from Go\n", checked, differ)
	if differ > 0 {
		os.Exit(1)
	}
}
