// switch.go — the switch-cost benchmark's Go peer: channel ping-pong round trip and
// thread-ring (µs per hop) and spawn+join per goroutine, in µs per operation (median of
// `repeat` runs). Run with GOMAXPROCS=1. Prints {name: µs} with the names preempt's table uses.
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

// threadRing is the Benchmarks Game's thread-ring: 503 goroutines in a ring of unbuffered
// channels pass a token, decremented at each hop; µs per hop.
func threadRing(hops int) float64 {
	const members = 503
	chans := make([]chan int, members)
	for i := range chans {
		chans[i] = make(chan int)
	}
	done := make(chan int)
	for i := 0; i < members; i++ {
		go func(id int, in, out chan int) {
			for token := range in {
				if token == 0 {
					done <- id
					return
				}
				out <- token - 1
			}
		}(i+1, chans[i], chans[(i+1)%members])
	}
	t0 := time.Now()
	chans[0] <- hops
	who := <-done
	dt := time.Since(t0)
	if who != hops%members+1 {
		panic("thread-ring: wrong member holds the token")
	}
	for _, c := range chans {
		close(c)
	}
	return float64(dt.Nanoseconds()) / float64(hops) / 1000
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
	hops := 10 * (*rounds) // thread-ring: ten hops per ping-pong round, as in switch.py
	var pp, tr, sj []float64
	for r := 0; r < *repeat; r++ {
		pp = append(pp, pingpong(*rounds))
		tr = append(tr, threadRing(hops))
		sj = append(sj, spawnJoin(*rounds/2))
	}
	json.NewEncoder(os.Stdout).Encode(map[string]float64{
		"chan ping-pong round trip":        median(pp),
		"thread-ring hop (503 goroutines)": median(tr),
		"spawn+join (one at a time)":       median(sj),
	})
}
