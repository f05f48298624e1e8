// switch.go — the switch-cost benchmark's Go peer (preempt.bench.switch's programs, the same
// algorithms and sizes), in µs per operation, median of `repeat` runs. Run with GOMAXPROCS=1,
// so that, like preempt's one M, every goroutine shares one OS thread.
//
// Fair to Go in the ways switch.py is fair to preempt:
//
//  1. Every program runs once before it is timed (the warm-up: the heap, the stacks of the
//     goroutines, the runtime's free lists), then `repeat` times.
//  2. The thread-ring's 503 members are started and parked on their channels before the clock
//     starts, as switch.py does with preempt.sleep(0): the time is the hops', not the spawns'.
//  3. The programs are the Benchmarks Game's thread-ring (503 goroutines pass a token N times)
//     and chameneos-redux (creatures meet at a meeting place held in a one-slot channel, both
//     complement their colours; N meetings with 3 creatures, then with 10), and Go's classic
//     concurrent prime sieve (a generator and one filter goroutine per prime found, chained by
//     unbuffered channels). Each checks its answer, as switch.py's do.
//
// Prints {name: µs} with the names preempt's table uses.
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
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
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
	dt := time.Since(t0)
	close(a)
	return float64(dt.Nanoseconds()) / float64(rounds) / 1000
}

const ringMembers = 503 // the Benchmarks Game's ring size

// threadRing: 503 goroutines in a ring of unbuffered channels pass a token, decremented at each
// hop; the member that receives 0 is the answer. µs per hop.
func threadRing(hops int) float64 {
	chans := make([]chan int, ringMembers)
	for i := range chans {
		chans[i] = make(chan int)
	}
	done := make(chan int)
	var started sync.WaitGroup
	started.Add(ringMembers)
	for i := 0; i < ringMembers; i++ {
		go func(id int, in, out chan int) {
			started.Done()
			for token := range in {
				if token == 0 {
					done <- id
					return
				}
				out <- token - 1
			}
		}(i+1, chans[i], chans[(i+1)%ringMembers])
	}
	started.Wait() // with one P, each member ran to its first receive before main woke
	t0 := time.Now()
	chans[0] <- hops
	who := <-done
	dt := time.Since(t0)
	if who != hops%ringMembers+1 {
		panic("thread-ring: wrong member holds the token")
	}
	for _, c := range chans {
		close(c)
	}
	return float64(dt.Nanoseconds()) / float64(hops) / 1000
}

// chameneos-redux. Colours 0, 1, 2 (blue, red, yellow); two different colours complement to
// the third, a colour meets itself unchanged.
func complement(a, b int) int {
	if a == b {
		return a
	}
	return 3 - a - b
}

type creatureInfo struct{ colour, name int }

// place is the meeting place's state; the one-slot channel holding it is its lock.
type place struct {
	n    int               // meetings so far
	mate chan creatureInfo // the creature waiting to be met, or nil
	info creatureInfo      // its colour and name
}

type tally struct{ met, same int }

func creature(me creatureInfo, meetings int, mall chan place, ended chan tally) {
	mine := make(chan creatureInfo)
	met, same := 0, 0
	for {
		p := <-mall
		var other creatureInfo
		switch {
		case p.n >= meetings:
			mall <- p
			ended <- tally{met, same}
			return
		case p.mate == nil: // nobody waits: wait here to be met
			mall <- place{n: p.n, mate: mine, info: me}
			other = <-mine
		default: // someone waits: this is a meeting
			mall <- place{n: p.n + 1}
			p.mate <- me
			other = p.info
		}
		me.colour = complement(me.colour, other.colour)
		if other.name == me.name {
			same++
		}
		met++
	}
}

func chameneosRun(colours []int, meetings int) {
	mall := make(chan place, 1)
	mall <- place{}
	ended := make(chan tally)
	for i, c := range colours {
		go creature(creatureInfo{c, i}, meetings, mall, ended)
	}
	total := 0
	for range colours {
		t := <-ended
		if t.same != 0 {
			panic("chameneos-redux: a creature met itself")
		}
		total += t.met
	}
	if total != 2*meetings {
		panic("chameneos-redux: meetings do not add up")
	}
}

var (
	chameneos3  = []int{0, 1, 2}
	chameneos10 = []int{0, 1, 2, 1, 2, 0, 1, 2, 1, 0}
)

// chameneos: the Benchmarks Game's two runs, 3 creatures then 10; µs per meeting.
func chameneos(meetings int) float64 {
	t0 := time.Now()
	chameneosRun(chameneos3, meetings)
	chameneosRun(chameneos10, meetings)
	return float64(time.Since(t0).Nanoseconds()) / float64(2*meetings) / 1000
}

// sieveHandoffs: how many channel receives the sieve makes to find the first n primes. A prime
// p_m is received by the filters of p_1..p_(m-1) and by main; a composite k by the filters up
// to that of its least prime factor, which drops it. The same count as switch.py's.
func sieveHandoffs(n int) int {
	var primes []int
	total := 0
	for k := 2; len(primes) < n; k++ {
		composite := false
		for j, p := range primes {
			if k%p == 0 {
				total += j + 1
				composite = true
				break
			}
		}
		if !composite {
			primes = append(primes, k)
			total += len(primes)
		}
	}
	return total
}

// sieve: Go's classic concurrent prime sieve; µs per channel hand-off. The generator and the
// filters are left parked at the end, as in the original program (switch.py's are ended after
// its clock stopped; Go cannot end a goroutine from outside).
func sieve(n int) float64 {
	t0 := time.Now()
	ch := make(chan int)
	go func(out chan<- int) {
		for i := 2; ; i++ {
			out <- i
		}
	}(ch)
	last := 0
	for i := 0; i < n; i++ {
		prime := <-ch
		last = prime
		next := make(chan int)
		go func(in <-chan int, out chan<- int, prime int) {
			for {
				i := <-in
				if i%prime != 0 {
					out <- i
				}
			}
		}(ch, next, prime)
		ch = next
	}
	dt := time.Since(t0)
	if n == 1000 && last != 7919 {
		panic("sieve: the 1000th prime is not 7919")
	}
	return float64(dt.Nanoseconds()) / float64(sieveHandoffs(n)) / 1000
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

// measure: one warm-up run, then `repeat` timed ones; the median.
func measure(repeat int, fn func() float64) float64 {
	fn()
	var xs []float64
	for r := 0; r < repeat; r++ {
		xs = append(xs, fn())
	}
	return median(xs)
}

func main() {
	rounds := flag.Int("rounds", 100000, "ping-pong rounds per run; the other sizes follow")
	repeat := flag.Int("repeat", 7, "timed runs, after one warm-up run")
	flag.Parse()
	n := *rounds
	out := map[string]float64{} // in switch.py's order: each program warms up just before its runs
	out["chan ping-pong round trip"] = measure(*repeat, func() float64 { return pingpong(n) })
	out["thread-ring hop (503 goroutines)"] = measure(*repeat, func() float64 { return threadRing(10 * n) })
	out["chameneos-redux meeting (3, then 10 creatures)"] = measure(*repeat, func() float64 { return chameneos(n) })
	out["prime sieve hand-off"] = measure(*repeat, func() float64 { return sieve(sievePrimes(n)) })
	out["spawn+join (one at a time)"] = measure(*repeat, func() float64 { return spawnJoin(n / 2) })
	json.NewEncoder(os.Stdout).Encode(out)
}

// sievePrimes: the primes the sieve finds for a run of `rounds` (switch.py's rule).
func sievePrimes(rounds int) int {
	if rounds/100 < 20 {
		return 20
	}
	return rounds / 100
}
