// Command coordinator is the registration handler of Go's coordinator
// (golang.org/x/build/internal/coordinator/pool.HandleReverse) with one change, as
// docs/coordinators.md shows it: the build key is decided by `gobuildkey serve` instead of
// a comparison with HMAC-MD5(master, host type). So rotation, revocation, HMAC-SHA256 keys
// and everything else the policy says apply to a Go coordinator.
//
// tests/cli/go_coordinator.rs builds and runs it against a real `gobuildkey serve`. It
// listens on -listen, prints its address on the first line of standard output, and
// answers GET /reverse as HandleReverse does, without the TLS check (the test runs on
// loopback) and without keeping the connection (it closes it after 101).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"
)

var verifyURL = flag.String("verify", "http://127.0.0.1:8790/verify", "gobuildkey serve's /verify")

// verifier asks gobuildkey serve; loopback, so a short timeout: an answer that does not
// come is a refusal.
var verifier = &http.Client{Timeout: 5 * time.Second}

// keyAccepted is the change: HandleReverse's `buildKey != builderKey(hostType)` becomes a
// question to gobuildkey serve with the agent's own headers.
func keyAccepted(r *http.Request) bool {
	req, err := http.NewRequest("GET", *verifyURL, nil)
	if err != nil {
		return false
	}
	for _, h := range []string{"X-Go-Host-Type", "X-Go-Builder-Key", "X-Go-Builder-Hostname", "X-Revdial-Version"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := verifier.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func handleReverse(w http.ResponseWriter, r *http.Request) {
	// (HandleReverse first refuses anything but TLS: "buildlet registration requires SSL".)
	hostType := r.Header.Get("X-Go-Host-Type")
	hostname := r.Header.Get("X-Go-Builder-Hostname")
	switch r.Header.Get("X-Revdial-Version") {
	case "":
		http.Error(w, "buildlet binary is too old", http.StatusBadRequest)
		return
	case "2":
	default:
		http.Error(w, "unknown revdial version", http.StatusBadRequest)
		return
	}
	if hostname == "" {
		http.Error(w, "missing X-Go-Builder-Hostname header", http.StatusBadRequest)
		return
	}
	if hostType == "" {
		http.Error(w, "missing X-Go-Host-Type; old buildlet binary?", http.StatusBadRequest)
		return
	}
	if !keyAccepted(r) {
		http.Error(w, "invalid build key", http.StatusPreconditionFailed)
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	(&http.Response{StatusCode: http.StatusSwitchingProtocols, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).Write(conn)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	http.HandleFunc("/reverse", handleReverse)
	log.Fatal(http.Serve(ln, nil))
}
