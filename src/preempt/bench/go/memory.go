// memory.go — the memory benchmark's Go peer: RSS growth per goroutine with `count`
// goroutines parked in a channel receive, as preempt's overhead.measure_memory does. Run with
// GOMAXPROCS=1. Prints {"bytes_per_goroutine": bytes, "goroutines": count}.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// rss reads the resident set size from /proc/self/statm (pages), in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		panic(err)
	}
	return pages * int64(os.Getpagesize())
}

func main() {
	count := flag.Int("count", 100000, "goroutines to park")
	flag.Parse()
	ch := make(chan int)
	started := make(chan struct{}, *count)
	runtime.GC()
	before := rss()
	for i := 0; i < *count; i++ {
		go func() {
			started <- struct{}{}
			<-ch
		}()
	}
	for i := 0; i < *count; i++ {
		<-started // every goroutine has run and is about to park
	}
	runtime.Gosched()
	after := rss()
	close(ch)
	json.NewEncoder(os.Stdout).Encode(map[string]float64{
		"bytes_per_goroutine": float64(after-before) / float64(*count),
		"goroutines":          float64(*count),
	})
}
