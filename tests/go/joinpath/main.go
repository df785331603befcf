// Command joinpath prints, for each line `HOME<TAB>HOSTTYPE` of its standard input, the key
// file Go's buildlet reads when GO_BUILD_KEY_PATH is unset — filepath.Join(HOME,
// ".gobuildkey-"+HOSTTYPE) — as hex, one line each. tests/vectors.rs compares gobuildkey's
// lookup with it where Go is installed.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		parts := strings.SplitN(in.Text(), "\t", 2)
		home, _ := hex.DecodeString(parts[0])
		fmt.Println(hex.EncodeToString([]byte(filepath.Join(string(home), ".gobuildkey-"+parts[1]))))
	}
}
