// switch.go — the switch-cost benchmark's Go peer: channel ping-pong round trip and
// spawn+join per goroutine, in µs per operation (median of `repeat` runs). Run with
// GOMAXPROCS=1. Prints {"chan ping-pong round trip": µs, "spawn+join (one at a time)": µs}.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"sort"
	"sync"
	"time"
)

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

func pingpong(rounds int) float64 {
	a, b := make(chan int), make(chan int)
	go func() {
		for v := range a {
			b <- v
		}
	}()
	t0 := time.Now()
	for i := 0; i < rounds; i++ {
		a <- i
		<-b
	}
	close(a)
	return float64(time.Since(t0).Nanoseconds()) / float64(rounds) / 1000
}

func spawnJoin(n int) float64 {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n) / 1000
}

func main() {
	rounds := flag.Int("rounds", 100000, "operations per run")
	repeat := flag.Int("repeat", 7, "runs")
	flag.Parse()
	var pp, sj []float64
	for r := 0; r < *repeat; r++ {
		pp = append(pp, pingpong(*rounds))
		sj = append(sj, spawnJoin(*rounds/2))
	}
	json.NewEncoder(os.Stdout).Encode(map[string]float64{
		"chan ping-pong round trip":  median(pp),
		"spawn+join (one at a time)": median(sj),
	})
}
