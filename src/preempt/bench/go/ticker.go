// ticker.go — the ticker-lateness benchmark's Go peer (preempt.bench.ticker's shape).
//
// One goroutine sleeps 1 ms in a loop and records how late each wake-up is, while `hogs`
// goroutines each run a CPU-bound loop sized to take `hogms` milliseconds: the loop's speed is
// measured at start (the least CPU time of three short runs), as ticker.py measures its hogs'. Run with
// GOMAXPROCS=1 so that, like preempt's one M, all goroutines share one OS thread: Go's sysmon
// preempts a goroutine after 10 ms (forcePreemptNS), by signal when it has no safe-point.
//
// Prints one JSON object: {"late_us": [...], "wall_s": seconds of the hogs' work,
// "cpu_per_hog_s": the process's CPU time over the work, per hog}.
package main

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"sync"
	"syscall"
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

	const calib = 10_000_000
	best := math.Inf(1) // CPU seconds: what the loop costs, whatever else the machine runs
	for i := 0; i < 3; i++ {
		c0 := cpuSeconds()
		sink += spin(calib)
		best = math.Min(best, cpuSeconds()-c0)
	}
	perIter := best * 1e9 / calib
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
	start, cpu0 := time.Now(), cpuSeconds()
	var wg sync.WaitGroup
	for i := 0; i < *hogs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink += spin(n)
		}()
	}
	wg.Wait()
	wall, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu0
	close(stop)
	<-tickerDone
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"late_us": late, "wall_s": wall,
		"cpu_per_hog_s": cpu / float64(*hogs)})
}

// cpuSeconds: the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
