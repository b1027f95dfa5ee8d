// etcd-load: the etcd side of Cairn's side-by-side benchmark. It runs the workloads of
// cairn-bench (client/cairn-bench.c) against an etcd 3.4 cluster with clientv3 and prints the
// same table or the same JSON line ("system":"etcd").
//
// Built in GOPATH mode from Debian's packages, with no module download:
//
//	GOPATH=/usr/share/gocode:$TMP GO111MODULE=off go build -o etcd-load .
package main

import (
	"context"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.uber.org/zap"
)

// ---- histogram: the same log-linear buckets as client/bench/hist.h ----

const (
	histSubBits  = 8
	histMaxLog2  = 40
	histHalf     = 1 << (histSubBits - 1)
	histNBuckets = (histMaxLog2 - histSubBits + 2) * histHalf
)

type hist struct {
	counts   [histNBuckets]uint64
	total    uint64
	min, max uint64
	sum      float64
}

func newHist() *hist { return &hist{min: ^uint64(0)} }

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := uint(63-bits.LeadingZeros64(v)) - (histSubBits - 1)
	i := int(e)*histHalf + int(v>>e)
	if i >= histNBuckets {
		return histNBuckets - 1
	}
	return i
}

func histBucket(i int) (low, width uint64) {
	if i < 1<<histSubBits {
		return uint64(i), 1
	}
	e := uint(i/histHalf) - 1
	return uint64(i-int(e)*histHalf) << e, 1 << e
}

func (h *hist) record(v uint64) {
	h.counts[histIndex(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	h.total += o.total
	h.sum += o.sum
	if o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
}

func (h *hist) quantile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	i := 0
	for ; i < histNBuckets; i++ {
		seen += h.counts[i]
		if seen >= rank {
			break
		}
	}
	if i == histNBuckets {
		return h.max
	}
	low, width := histBucket(i)
	v := low + width/2
	if v < h.min {
		v = h.min
	}
	if v > h.max {
		v = h.max
	}
	return v
}

// ---- configuration ----

type config struct {
	endpoints          string
	workload           string
	clients, conns     int
	keySize, valueSize int
	keySpace           uint64
	total              uint64
	duration, warmup   time.Duration
	timeout, progress  time.Duration
	ratio              float64
	preload, noPreload bool
	jsonOut            bool
	seed               uint64
	killPid            int
}

const (
	preloadWriters        = 64
	progressMinRun        = 3 * time.Second
	drainGrace            = 2 * time.Second
	failoverAttempt       = 100 * time.Millisecond
	failoverPause         = 10 * time.Millisecond
	failoverMax           = 60 * time.Second
	dialTimeout           = 2 * time.Second
	phaseWarmup     int32 = 0
	phaseMeasure          = 1
	phaseStop             = 2
)

var workloads = []string{"put", "get", "get-serial", "txn-cas", "mixed", "failover"}

func parseArgs() *config {
	c := &config{}
	fs := flag.NewFlagSet("etcd-load", flag.ExitOnError)
	def := os.Getenv("ETCD_ENDPOINTS")
	if def == "" {
		def = "127.0.0.1:2379"
	}
	fs.StringVar(&c.endpoints, "endpoints", def, "members h:p,... (default $ETCD_ENDPOINTS)")
	fs.StringVar(&c.workload, "w", "", "workload: "+strings.Join(workloads, ", "))
	fs.StringVar(&c.workload, "workload", "", "workload (same as -w)")
	fs.IntVar(&c.clients, "clients", 1, "concurrent logical clients (one request in flight each)")
	fs.IntVar(&c.clients, "c", 1, "same as --clients")
	fs.IntVar(&c.conns, "conns", 0, "clientv3 clients (gRPC connections) the clients are spread over (default 1)")
	fs.IntVar(&c.keySize, "key-size", 16, "key bytes")
	fs.IntVar(&c.valueSize, "value-size", 256, "value bytes")
	fs.Uint64Var(&c.keySpace, "key-space", 10000, "distinct keys")
	fs.Uint64Var(&c.total, "total", 0, "measure N operations (default: by duration)")
	fs.Uint64Var(&c.total, "n", 0, "same as --total")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "same as --duration")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured load first")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "deadline of each request")
	fs.DurationVar(&c.progress, "progress", time.Second, "progress line period on stderr (0: none)")
	fs.Float64Var(&c.ratio, "ratio", 0.5, "mixed: fraction of reads")
	fs.BoolVar(&c.preload, "preload", false, "write every key first (default for get, get-serial, txn-cas, mixed)")
	fs.BoolVar(&c.noPreload, "no-preload", false, "do not preload")
	fs.BoolVar(&c.jsonOut, "json", false, "print one JSON line")
	fs.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "key choice seed")
	fs.IntVar(&c.killPid, "kill-pid", 0, "failover: the process to kill -9")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 1 || (fs.NArg() == 1 && c.workload != "") {
		die("unexpected arguments: %v", fs.Args())
	}
	if fs.NArg() == 1 {
		c.workload = fs.Arg(0)
	}
	if c.workload == "" {
		c.workload = "put"
	}
	ok := false
	for _, w := range workloads {
		ok = ok || w == c.workload
	}
	if !ok {
		die("unknown workload %q", c.workload)
	}
	if c.clients < 1 {
		die("--clients must be at least 1")
	}
	if c.conns == 0 {
		c.conns = 1
	}
	if c.conns > c.clients {
		c.conns = c.clients
	}
	if c.workload == "failover" {
		if c.killPid == 0 {
			die("failover needs --kill-pid")
		}
		c.clients, c.conns = 1, 1
	}
	if c.keySpace < 1 || len(fmt.Sprint(c.keySpace-1)) > c.keySize-1 {
		die("--key-size %d is too small for %d keys", c.keySize, c.keySpace)
	}
	if c.ratio < 0 || c.ratio > 1 {
		die("--ratio must be in [0, 1]")
	}
	if !c.preload && !c.noPreload {
		switch c.workload {
		case "get", "get-serial", "txn-cas", "mixed":
			c.preload = true
		}
	}
	if c.noPreload {
		c.preload = false
	}
	return c
}

func die(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcd-load: "+f+"\n", a...)
	os.Exit(3)
}

// ---- the run ----

type bench struct {
	cfg       *config
	clis      []*clientv3.Client
	value     string
	phase     int32
	start     int64 // measurement start, ns since t0
	stopAt    int64 // ns since t0; ops completing later are not counted
	t0        time.Time
	issued    uint64
	done      uint64
	errors    uint64
	idle      int32
	interrupt int32
	lastErrMu sync.Mutex
	lastErr   string
}

type worker struct {
	b         *bench
	cli       *clientv3.Client
	rng       uint64
	key       []byte
	h         *hist
	errs      uint64
	casFailed uint64
	lastDone  int64
}

func (b *bench) now() int64 { return int64(time.Since(b.t0)) }

func rngNext(s *uint64) uint64 {
	*s ^= *s >> 12
	*s ^= *s << 25
	*s ^= *s >> 27
	return *s * 2685821657736338717
}

// Key i is "k" then i in decimal, zero-padded to the key size (as cairn-bench).
func formatKey(buf []byte, i uint64) string {
	d := fmt.Sprint(i)
	buf[0] = 'k'
	pad := len(buf) - 1 - len(d)
	for j := 1; j <= pad; j++ {
		buf[j] = '0'
	}
	copy(buf[1+pad:], d)
	return string(buf)
}

func (b *bench) setErr(err error) {
	b.lastErrMu.Lock()
	b.lastErr = err.Error()
	b.lastErrMu.Unlock()
}

// One operation of the workload; returns its error and whether a CAS lost its race.
func (w *worker) op(wl string) (error, bool) {
	cfg := w.b.cfg
	key := formatKey(w.key, rngNext(&w.rng)%cfg.keySpace)
	if wl == "mixed" {
		if float64(rngNext(&w.rng)>>11)/9007199254740992.0 < cfg.ratio {
			wl = "get"
		} else {
			wl = "put"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	switch wl {
	case "put":
		_, err := w.cli.Put(ctx, key, w.b.value)
		return err, false
	case "get":
		_, err := w.cli.Get(ctx, key)
		return err, false
	case "get-serial":
		_, err := w.cli.Get(ctx, key, clientv3.WithSerializable())
		return err, false
	case "txn-cas":
		g, err := w.cli.Get(ctx, key)
		if err != nil {
			return err, false
		}
		var mod int64
		if len(g.Kvs) == 1 {
			mod = g.Kvs[0].ModRevision
		}
		t, err := w.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
			Then(clientv3.OpPut(key, w.b.value)).
			Commit()
		if err != nil {
			return err, false
		}
		return nil, !t.Succeeded
	}
	return fmt.Errorf("unknown workload %s", wl), false
}

// The closed loop of one logical client.
func (w *worker) loop(wg *sync.WaitGroup) {
	defer wg.Done()
	b := w.b
	for {
		ph := atomic.LoadInt32(&b.phase)
		if ph == phaseStop || atomic.LoadInt32(&b.interrupt) != 0 {
			break
		}
		measured := ph == phaseMeasure
		if measured && b.cfg.total > 0 && atomic.AddUint64(&b.issued, 1) > b.cfg.total {
			break
		}
		t0 := b.now()
		err, lost := w.op(b.cfg.workload)
		t1 := b.now()
		if !measured || t1 > atomic.LoadInt64(&b.stopAt) {
			continue
		}
		if err != nil {
			w.errs++
			atomic.AddUint64(&b.errors, 1)
			b.setErr(err)
		} else {
			w.h.record(uint64(t1 - t0))
			if lost {
				w.casFailed++
			}
		}
		if t1 > w.lastDone {
			w.lastDone = t1
		}
		atomic.AddUint64(&b.done, 1)
	}
	atomic.AddInt32(&b.idle, 1)
}

func (b *bench) preload() {
	cfg := b.cfg
	n := preloadWriters
	if n < cfg.clients {
		n = cfg.clients
	}
	if uint64(n) > cfg.keySpace {
		n = int(cfg.keySpace)
	}
	var next, errs uint64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(cli *clientv3.Client) {
			defer wg.Done()
			buf := make([]byte, cfg.keySize)
			for atomic.LoadInt32(&b.interrupt) == 0 {
				k := atomic.AddUint64(&next, 1) - 1
				if k >= cfg.keySpace {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
				_, err := cli.Put(ctx, formatKey(buf, k), b.value)
				cancel()
				if err != nil {
					atomic.AddUint64(&errs, 1)
					b.setErr(err)
				}
			}
		}(b.clis[i%len(b.clis)])
	}
	wg.Wait()
	if !cfg.jsonOut {
		fmt.Fprintf(os.Stderr, "preload: %d keys in %.1f s, %d errors\n", cfg.keySpace,
			time.Since(t0).Seconds(), errs)
	}
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "etcd-load: preload failed for %d keys (%s)\n", errs, b.lastErr)
		os.Exit(2)
	}
}

func (b *bench) run() ([]*worker, float64) {
	cfg := b.cfg
	workers := make([]*worker, cfg.clients)
	var wg sync.WaitGroup
	atomic.StoreInt64(&b.stopAt, 1<<62)
	if cfg.warmup > 0 {
		atomic.StoreInt32(&b.phase, phaseWarmup)
	} else {
		atomic.StoreInt64(&b.start, b.now())
		atomic.StoreInt32(&b.phase, phaseMeasure)
	}
	for i := range workers {
		w := &worker{b: b, cli: b.clis[i%len(b.clis)], key: make([]byte, cfg.keySize), h: newHist()}
		w.rng = cfg.seed ^ (uint64(i+1) * 0x9e3779b97f4a7c15)
		if w.rng == 0 {
			w.rng = 1
		}
		workers[i] = w
		wg.Add(1)
		go w.loop(&wg)
	}
	if cfg.warmup > 0 {
		time.Sleep(cfg.warmup)
		atomic.StoreInt64(&b.start, b.now())
		atomic.StoreInt32(&b.phase, phaseMeasure)
	}
	start := atomic.LoadInt64(&b.start)
	progress := cfg.progress > 0 && !cfg.jsonOut && (cfg.total > 0 || cfg.duration >= progressMinRun)
	nextProgress := start + int64(cfg.progress)
	lastT, lastDone := start, uint64(0)
	var t int64
	for {
		t = b.now()
		done := atomic.LoadUint64(&b.done)
		if atomic.LoadInt32(&b.interrupt) != 0 {
			break
		}
		if cfg.total > 0 && done >= cfg.total || cfg.total == 0 && t-start >= int64(cfg.duration) {
			break
		}
		if int(atomic.LoadInt32(&b.idle)) == cfg.clients {
			break
		}
		if progress && t >= nextProgress {
			fmt.Fprintf(os.Stderr, "[%6.1fs] %10d ops %10.0f ops/s (last %.0f ops/s) %d errors\n",
				float64(t-start)/1e9, done, float64(done)/(float64(t-start)/1e9),
				float64(done-lastDone)/(float64(t-lastT)/1e9), atomic.LoadUint64(&b.errors))
			lastDone, lastT = done, t
			nextProgress += int64(cfg.progress)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cfg.total == 0 || atomic.LoadInt32(&b.interrupt) != 0 {
		atomic.StoreInt64(&b.stopAt, t)
	}
	atomic.StoreInt32(&b.phase, phaseStop)
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(cfg.timeout + drainGrace):
		fmt.Fprintln(os.Stderr, "etcd-load: some operations did not finish")
	}
	if cfg.total > 0 && atomic.LoadInt32(&b.interrupt) == 0 {
		t = start
		for _, w := range workers {
			if w.lastDone > t {
				t = w.lastDone
			}
		}
	}
	return workers, float64(t-start) / 1e9
}

func (b *bench) report(workers []*worker, secs float64) {
	cfg := b.cfg
	all := newHist()
	var errs, casFailed uint64
	for _, w := range workers {
		all.merge(w.h)
		errs += w.errs
		casFailed += w.casFailed
	}
	ops := all.total
	opsS := 0.0
	if secs > 0 {
		opsS = float64(ops) / secs
	}
	ms := func(ns uint64) float64 { return float64(ns) / 1e6 }
	q := []float64{ms(all.quantile(0.5)), ms(all.quantile(0.9)), ms(all.quantile(0.99)),
		ms(all.quantile(0.999)), ms(all.max)}
	if cfg.jsonOut {
		fmt.Printf("{\"system\":\"etcd\",\"workload\":\"%s\",\"clients\":%d,\"ops\":%d,"+
			"\"ops_per_sec\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"+
			"\"p999_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%d,\"cas_failures\":%d,\"conns\":%d,"+
			"\"key_size\":%d,\"value_size\":%d,\"key_space\":%d,\"seconds\":%.3f",
			cfg.workload, cfg.clients, ops, opsS, q[0], q[1], q[2], q[3], q[4], errs, casFailed,
			cfg.conns, cfg.keySize, cfg.valueSize, cfg.keySpace, secs)
		if cfg.workload == "mixed" {
			fmt.Printf(",\"read_ratio\":%.3f", cfg.ratio)
		}
		fmt.Println("}")
		return
	}
	fmt.Printf("workload %s (etcd): %d clients over %d connections, key %d B, value %d B, key space %d\n",
		cfg.workload, cfg.clients, cfg.conns, cfg.keySize, cfg.valueSize, cfg.keySpace)
	fmt.Printf("%-12s %12s %10s %10s %10s %10s %10s %10s %8s\n", "ops", "ops/s", "p50 ms",
		"p90 ms", "p99 ms", "p99.9 ms", "max ms", "mean ms", "errors")
	mean := 0.0
	if ops > 0 {
		mean = all.sum / float64(ops) / 1e6
	}
	fmt.Printf("%-12d %12.1f %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f %8d\n", ops, opsS,
		q[0], q[1], q[2], q[3], q[4], mean, errs)
	fmt.Printf("measured %.2f s (after %.2f s of warm-up)\n", secs, cfg.warmup.Seconds())
	if cfg.workload == "txn-cas" {
		fmt.Printf("compare failures (CAS lost a race, not errors): %d\n", casFailed)
	}
	if errs > 0 {
		fmt.Printf("  last error: %s\n", b.lastErr)
	}
}

// failover: put once, kill -9 the leader, time until a put succeeds again.
func (b *bench) failover() {
	cli := b.clis[0]
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.timeout)
	_, err := cli.Put(ctx, "failover-probe", "0")
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd-load: failover: first put: %v\n", err)
		os.Exit(2)
	}
	t0 := time.Now()
	if err := syscall.Kill(b.cfg.killPid, syscall.SIGKILL); err != nil {
		fmt.Fprintf(os.Stderr, "etcd-load: kill %d: %v\n", b.cfg.killPid, err)
		os.Exit(2)
	}
	attempts := 0
	for {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), failoverAttempt)
		_, err = cli.Put(ctx, "failover-probe", "1")
		cancel()
		if err == nil || time.Since(t0) > failoverMax || atomic.LoadInt32(&b.interrupt) != 0 {
			break
		}
		time.Sleep(failoverPause)
	}
	el := time.Since(t0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd-load: failover: no write succeeded: %v\n", err)
		os.Exit(2)
	}
	if b.cfg.jsonOut {
		fmt.Printf("{\"system\":\"etcd\",\"workload\":\"failover\",\"failover_ms\":%.1f,\"attempts\":%d}\n",
			float64(el)/1e6, attempts)
	} else {
		fmt.Printf("failover: first write succeeded %.1f ms after kill -9 of pid %d (%d attempts)\n",
			float64(el)/1e6, b.cfg.killPid, attempts)
	}
}

// Endpoint list rotated by `shift`, so that client i starts with member i % n.
func rotate(eps []string, shift int) []string {
	out := make([]string, len(eps))
	for i := range eps {
		out[i] = eps[(i+shift)%len(eps)]
	}
	return out
}

func main() {
	cfg := parseArgs()
	b := &bench{cfg: cfg, t0: time.Now()}
	v := make([]byte, cfg.valueSize)
	for i := range v {
		v[i] = byte('a' + (i*7+3)%26)
	}
	b.value = string(v)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; atomic.StoreInt32(&b.interrupt, 1) }()

	eps := strings.Split(cfg.endpoints, ",")
	lc := zap.NewProductionConfig()
	lc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	for i := 0; i < cfg.conns; i++ {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   rotate(eps, i),
			DialTimeout: dialTimeout,
			LogConfig:   &lc,
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "etcd-load: connect: %v\n", err)
			os.Exit(2)
		}
		defer cli.Close()
		b.clis = append(b.clis, cli)
	}
	if cfg.workload == "failover" {
		b.failover()
		return
	}
	if cfg.preload {
		b.preload()
	}
	workers, secs := b.run()
	b.report(workers, secs)
	if atomic.LoadInt32(&b.interrupt) != 0 {
		os.Exit(130)
	}
}
