// Command app is a tiny HTTP app for trying latch's cluster mode: it
// answers every request with its own address, and says when latch tells it
// (X-Latch-Session-Moved) that a sticky session had to move to it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "address to listen on")
	flag.Parse()
	log.Printf("app listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served by %s\n", *addr)
		if from := r.Header.Get("X-Latch-Session-Moved"); from != "" {
			fmt.Fprintf(w, "your session moved here from %s\n", from)
		}
	})))
}
