// ticker.go — the ticker-lateness benchmark's Go peer (preempt.bench.ticker's shape).
//
// One goroutine sleeps 1 ms in a loop and records how late each wake-up is, while `hogs`
// goroutines each run a CPU-bound loop sized to take about `hogms` milliseconds. Run with
// GOMAXPROCS=1 so that, like preempt's one M, all goroutines share one OS thread: Go's sysmon
// preempts a goroutine after 10 ms (forcePreemptNS), by signal when it has no safe-point.
//
// Prints one JSON object: {"late_us": [...], "wall_s": seconds of the hogs' work}.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"sync"
	"time"
)

var sink uint64

func spin(n int) uint64 {
	x := uint64(88172645463325252)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func main() {
	hogs := flag.Int("hogs", 4, "CPU-bound goroutines")
	hogms := flag.Float64("hogms", 250, "milliseconds of work per hog")
	flag.Parse()

	t0 := time.Now()
	sink += spin(10_000_000)
	perIter := float64(time.Since(t0).Nanoseconds()) / 10_000_000
	n := int(*hogms * 1e6 / perIter)

	var late []float64
	stop := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			t := time.Now()
			time.Sleep(time.Millisecond)
			late = append(late, float64(time.Since(t).Nanoseconds()-1_000_000)/1000)
		}
	}()
	time.Sleep(2 * time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *hogs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink += spin(n)
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	close(stop)
	<-tickerDone
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"late_us": late, "wall_s": wall})
}
