package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/joho/godotenv"

	"blog/internal/api"
	"blog/internal/post"
	"blog/internal/store/mongo"
)

// Config is every setting of the blog, with its default, its environment
// variable and (in newFlags) its flag. Precedence, lowest first: default,
// .env file in the working directory, the real environment, flags.
type Config struct {
	MongoURI     string `env:"MONGO_URI"`
	Host         string `env:"HOST" envDefault:"127.0.0.1"`
	PostsPort    int    `env:"PORT" envDefault:"4000"`
	CommentsPort int    `env:"COMMENTS_PORT" envDefault:"4001"`
	WebPort      int    `env:"WEB_PORT" envDefault:"8080"`
	// PostsURL and CommentsURL are where the web service reaches the APIs;
	// empty means this machine's PORT and COMMENTS_PORT.
	PostsURL        string        `env:"POSTS_URL"`
	CommentsURL     string        `env:"COMMENTS_URL"`
	DataDir         string        `env:"BLOG_DATA_DIR" envDefault:"./data"`
	EmbedLimit      int           `env:"BLOG_EMBED_LIMIT" envDefault:"50"`
	LogLevel        slog.Level    `env:"LOG_LEVEL" envDefault:"info"`
	ShutdownTimeout time.Duration `env:"BLOG_SHUTDOWN_TIMEOUT" envDefault:"8s"`
	APIToken        string        `env:"BLOG_API_TOKEN"`
	CommentRate     int           `env:"BLOG_COMMENT_RATE" envDefault:"60"`
	Insecure        bool          `env:"BLOG_INSECURE"`
	// ChangelogRetention is how long the embedded change log keeps entries
	// that some known consumer has not applied yet; entries every consumer
	// has applied are pruned within seconds whatever it says.
	ChangelogRetention time.Duration `env:"BLOG_CHANGELOG_RETENTION" envDefault:"168h"`

	// Limits on what one client can hold (see limitFlags and the README's
	// security section).
	TrustedProxies   string        `env:"BLOG_TRUSTED_PROXIES"`
	MaxStreams       int           `env:"BLOG_MAX_STREAMS" envDefault:"500"`
	StreamsPerClient int           `env:"BLOG_STREAMS_PER_CLIENT" envDefault:"8"`
	StreamLifetime   time.Duration `env:"BLOG_STREAM_LIFETIME" envDefault:"10m"`
	ListBytes        int           `env:"BLOG_LIST_BYTES" envDefault:"1048576"`
	SessionIdle      time.Duration `env:"BLOG_SESSION_IDLE" envDefault:"1h"`
	LoginRate        int           `env:"BLOG_LOGIN_RATE" envDefault:"10"`
	LoginGlobalRate  int           `env:"BLOG_LOGIN_GLOBAL_RATE" envDefault:"100"`
}

// limitFlags binds the flags of the client limits.
func limitFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", cfg.TrustedProxies, "CIDR networks of reverse proxies whose X-Forwarded-For/-Proto are believed; empty: none (env BLOG_TRUSTED_PROXIES)")
	fs.IntVar(&cfg.MaxStreams, "max-streams", cfg.MaxStreams, "live-update streams open at once per service; 0: no cap (env BLOG_MAX_STREAMS)")
	fs.IntVar(&cfg.StreamsPerClient, "streams-per-client", cfg.StreamsPerClient, "live-update streams one client address (IPv6: /64) may hold; 0: no cap (env BLOG_STREAMS_PER_CLIENT)")
	fs.DurationVar(&cfg.StreamLifetime, "stream-lifetime", cfg.StreamLifetime, "a live-update stream ends after this and the browser reconnects; 0: never (env BLOG_STREAM_LIFETIME)")
	fs.IntVar(&cfg.ListBytes, "list-bytes", cfg.ListBytes, "byte budget of one list page (GET /posts, GET /comments/{postId}) (env BLOG_LIST_BYTES)")
	fs.DurationVar(&cfg.SessionIdle, "session-idle", cfg.SessionIdle, "an author's sign-in ends after this long unused (env BLOG_SESSION_IDLE)")
	fs.IntVar(&cfg.LoginRate, "login-rate", cfg.LoginRate, "sign-in attempts per minute per address; 0: no limit (env BLOG_LOGIN_RATE)")
	fs.IntVar(&cfg.LoginGlobalRate, "login-global-rate", cfg.LoginGlobalRate, "sign-in attempts per minute in all; 0: no limit (env BLOG_LOGIN_GLOBAL_RATE)")
}

// validateLimits checks the client limits.
func (c Config) validateLimits() error {
	var errs []error
	if _, err := api.ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("BLOG_TRUSTED_PROXIES: %w", err))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"BLOG_MAX_STREAMS", c.MaxStreams}, {"BLOG_STREAMS_PER_CLIENT", c.StreamsPerClient}, {"BLOG_LOGIN_RATE", c.LoginRate}, {"BLOG_LOGIN_GLOBAL_RATE", c.LoginGlobalRate}} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("%s must be 0 (off) or more, not %d", v.name, v.n))
		}
	}
	if c.StreamLifetime < 0 || c.SessionIdle < 0 {
		errs = append(errs, errors.New("BLOG_STREAM_LIFETIME and BLOG_SESSION_IDLE must not be negative"))
	}
	if c.ListBytes < 16<<10 {
		errs = append(errs, fmt.Errorf("BLOG_LIST_BYTES must be at least 16384, not %d", c.ListBytes))
	}
	return errors.Join(errs...)
}

// proxies is BLOG_TRUSTED_PROXIES parsed (validated by loadConfig).
func (c Config) proxies() *api.Proxies {
	p, _ := api.ParseProxies(c.TrustedProxies)
	return p
}

// streamLimits are the live-update stream caps; 0 in the config means off.
func (c Config) streamLimits() api.StreamLimits {
	off := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	life := c.StreamLifetime
	if life == 0 {
		life = -1
	}
	return api.StreamLimits{Max: off(c.MaxStreams), PerClient: off(c.StreamsPerClient), Lifetime: life}
}

// offIfZero maps the config's 0 (off) to the web package's negative (off).
func offIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// newFlags binds a flag to each Config field, defaulting to the value the
// environment gave it. only, when given, names the flags a command uses, so
// that a command refuses the settings it would ignore.
func newFlags(name string, cfg *Config, out io.Writer, only ...string) *flag.FlagSet {
	all := flag.NewFlagSet(name, flag.ContinueOnError)
	all.StringVar(&cfg.MongoURI, "mongo-uri", cfg.MongoURI, "MongoDB URI (a replica set); empty uses the embedded store (env MONGO_URI)")
	all.StringVar(&cfg.Host, "host", cfg.Host, "address to listen on (env HOST)")
	all.IntVar(&cfg.PostsPort, "port", cfg.PostsPort, "posts service port (env PORT)")
	all.IntVar(&cfg.CommentsPort, "comments-port", cfg.CommentsPort, "comments service port (env COMMENTS_PORT)")
	all.IntVar(&cfg.WebPort, "web-port", cfg.WebPort, "web front end port (env WEB_PORT)")
	all.StringVar(&cfg.PostsURL, "posts-url", cfg.PostsURL, "where the web front end reaches the posts API; empty: this machine's PORT (env POSTS_URL)")
	all.StringVar(&cfg.CommentsURL, "comments-url", cfg.CommentsURL, "where the web front end reaches the comments API; empty: this machine's COMMENTS_PORT (env COMMENTS_URL)")
	all.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "embedded store directory (env BLOG_DATA_DIR)")
	all.IntVar(&cfg.EmbedLimit, "embed-limit", cfg.EmbedLimit, "latest comments embedded in a post (env BLOG_EMBED_LIMIT)")
	all.TextVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "`level`: debug, info, warn or error (env LOG_LEVEL)")
	all.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long shutdown may drain requests (env BLOG_SHUTDOWN_TIMEOUT)")
	all.StringVar(&cfg.APIToken, "api-token", cfg.APIToken, "bearer token required for writes to posts and edits/deletes of comments (env BLOG_API_TOKEN)")
	all.IntVar(&cfg.CommentRate, "comment-rate", cfg.CommentRate, "comments a client IP may create per minute; 0 turns the limit off (env BLOG_COMMENT_RATE)")
	all.BoolVar(&cfg.Insecure, "insecure", cfg.Insecure, "allow a non-loopback HOST without BLOG_API_TOKEN (env BLOG_INSECURE)")
	all.DurationVar(&cfg.ChangelogRetention, "changelog-retention", cfg.ChangelogRetention, "how long the embedded change log waits for a consumer that has not applied its entries (entries every consumer has applied are pruned within seconds); 0 keeps them forever (env BLOG_CHANGELOG_RETENTION)")
	limitFlags(all, cfg)
	if len(only) == 0 {
		all.SetOutput(out)
		return all
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	all.VisitAll(func(f *flag.Flag) {
		if slices.Contains(only, f.Name) {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
	return fs
}

// verifyFlags are the settings `blog verify` uses: where the store is and
// how much a post embeds.
var verifyFlags = []string{"mongo-uri", "data-dir", "embed-limit", "log-level"}

// commandFlags names the flags each service command uses, so that a
// setting it would ignore (`blog web -mongo-uri ...`) is refused rather
// than silently dropped; serve, which runs everything, takes them all.
// The environment is not checked this way: one .env serves every command.
var commandFlags = map[string][]string{
	"posts": {"mongo-uri", "host", "port", "data-dir", "embed-limit", "log-level", "shutdown-timeout",
		"api-token", "insecure", "changelog-retention", "trusted-proxies", "max-streams",
		"streams-per-client", "stream-lifetime", "list-bytes"},
	"comments": {"mongo-uri", "host", "comments-port", "data-dir", "embed-limit", "log-level", "shutdown-timeout",
		"api-token", "insecure", "comment-rate", "changelog-retention", "trusted-proxies", "list-bytes"},
	"web": {"host", "port", "comments-port", "web-port", "posts-url", "comments-url", "data-dir", "log-level",
		"shutdown-timeout", "api-token", "insecure", "trusted-proxies", "max-streams", "streams-per-client",
		"stream-lifetime", "session-idle", "login-rate", "login-global-rate"},
	"verify":      verifyFlags,
	"deadletters": verifyFlags, // the same: where the store is
}

// defaultConfig is the config with every default and nothing from the
// environment, for `blog help`.
func defaultConfig() Config {
	var cfg Config
	_ = env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{}})
	return cfg
}

// loadConfig builds the config from defaults, ./.env, the environment (read
// through getenv, so tests need not touch the process's) and flags, and
// returns it with the arguments left after the flags. more, if not nil,
// adds a command's own flags to the set; only names the shared flags the
// command takes (none: all). -h prints the command's usage to out and
// returns flag.ErrHelp; a bad flag is returned, never printed, so it is
// reported once.
func loadConfig(name string, args []string, getenv func(string) string, out io.Writer, more func(*flag.FlagSet), only ...string) (Config, []string, error) {
	var cfg Config
	vars, err := readDotenv(".env")
	if err != nil {
		return cfg, nil, err
	}
	params, err := env.GetFieldParams(&cfg)
	if err != nil {
		return cfg, nil, fmt.Errorf("config fields: %w", err)
	}
	for _, p := range params {
		if v := getenv(p.Key); v != "" {
			vars[p.Key] = v
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return cfg, nil, envProblem(err, vars)
	}
	fl := newFlags(name, &cfg, io.Discard, only...)
	if more != nil {
		more(fl)
	}
	fl.Usage = func() {}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "usage: %s [flags]\n\nFlags (each also an environment variable; a .env file is read too):\n", name)
			fl.SetOutput(out)
			fl.PrintDefaults()
			return cfg, nil, err
		}
		return cfg, nil, fmt.Errorf("%w (%s -h lists the flags)", err, name)
	}
	if err := cfg.validate(); err != nil {
		return cfg, nil, err
	}
	return cfg, fl.Args(), nil
}

// readDotenv reads a .env file like the seed's dotenv; none is no error. A
// malformed file is reported with the number of its first bad line: the
// parser says only what it choked on, so the line is found as the first
// after which no prefix of the file parses again (a multi-line quoted
// value parses once it is closed).
func readDotenv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	vars, err := godotenv.UnmarshalBytes(b)
	if err == nil {
		return vars, nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	bad := len(lines)
	for bad > 1 {
		if _, perr := godotenv.Unmarshal(strings.Join(lines[:bad-1], "")); perr == nil {
			break
		}
		bad--
	}
	return nil, fmt.Errorf("%s line %d: %q is not NAME=value", path, bad, strings.TrimRight(lines[bad-1], "\r\n"))
}

// envProblem rewords the env library's errors, which name Go fields, to name
// the variables a user actually set.
func envProblem(err error, vars map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config from environment: %w", err)
	}
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeFor[Config]().FieldByName(pe.Name); ok {
				errs = append(errs, fmt.Errorf("%s: %q is not a valid %s", f.Tag.Get("env"), vars[f.Tag.Get("env")], pe.Type))
				continue
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func (c Config) validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    int
	}{{"PORT", c.PostsPort}, {"COMMENTS_PORT", c.CommentsPort}, {"WEB_PORT", c.WebPort}} {
		if p.v < 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s must be a port number from 0 to 65535, not %d", p.name, p.v))
		}
	}
	if c.EmbedLimit < 1 || c.EmbedLimit > 1000 {
		errs = append(errs, fmt.Errorf("BLOG_EMBED_LIMIT must be from 1 to 1000, not %d", c.EmbedLimit))
	}
	if c.CommentRate < 0 {
		errs = append(errs, fmt.Errorf("BLOG_COMMENT_RATE must be 0 (off) or more, not %d", c.CommentRate))
	}
	if c.APIToken == "" && !c.Insecure && !isLoopback(c.Host) {
		errs = append(errs, fmt.Errorf("HOST %q is reachable from other machines, and without BLOG_API_TOKEN anyone there could rewrite the blog: set BLOG_API_TOKEN, or BLOG_INSECURE=1 if that is what you want", c.Host))
	}
	if c.DataDir == "" && c.MongoURI == "" {
		errs = append(errs, errors.New("BLOG_DATA_DIR must not be empty"))
	}
	if err := c.validateLimits(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host (a name or an IP) only listens on this
// machine. An empty host means every interface, so it is not loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// postsURL is where the web service reaches the posts API.
func (c Config) postsURL() string {
	if c.PostsURL != "" {
		return c.PostsURL
	}
	return serviceURL(c.Host, c.PostsPort)
}

// commentsURL is where the web service reaches the comments API.
func (c Config) commentsURL() string {
	if c.CommentsURL != "" {
		return c.CommentsURL
	}
	return serviceURL(c.Host, c.CommentsPort)
}

// embedLimit returns the embed limit to give a store.
func (c Config) embedLimit() int {
	if c.EmbedLimit <= 0 {
		return post.DefaultEmbedLimit
	}
	return c.EmbedLimit
}

// maskURI hides a MongoDB URI's secrets (password, secret-bearing options)
// for the start-up log; an unset URI stays empty.
func maskURI(uri string) string {
	if uri == "" {
		return ""
	}
	return mongo.MaskURI(uri)
}

// mask shows whether a secret is set, never what it is.
func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "****"
}

// startup is the config as one command's start-up log shows it: the
// settings that command uses, secrets masked.
type startup struct {
	Config
	cmd string
}

// LogValue lists what s.cmd uses: `blog web` reaches data over HTTP, so it
// shows no store settings; `blog verify` and `blog deadletters` only store
// settings; the APIs alone no web front end settings.
func (s startup) LogValue() slog.Value {
	all := s.Config.LogValue().Group()
	skip := map[string][]string{
		"web":      {"store", "MONGO_URI", "BLOG_DATA_DIR", "BLOG_EMBED_LIMIT", "BLOG_CHANGELOG_RETENTION"},
		"posts":    {"WEB_PORT", "POSTS_URL", "COMMENTS_URL"},
		"comments": {"WEB_PORT", "POSTS_URL", "COMMENTS_URL"},
	}[s.cmd]
	if s.MongoURI != "" { // settings of the embedded store only
		skip = append(skip, "BLOG_DATA_DIR", "BLOG_CHANGELOG_RETENTION")
	}
	keep := func(a slog.Attr) bool { return !slices.Contains(skip, a.Key) }
	if s.cmd == "verify" || s.cmd == "deadletters" {
		keep = func(a slog.Attr) bool {
			return slices.Contains([]string{"store", "MONGO_URI", "BLOG_DATA_DIR", "BLOG_EMBED_LIMIT", "LOG_LEVEL"}, a.Key)
		}
	}
	var out []slog.Attr
	for _, a := range all {
		if keep(a) {
			out = append(out, a)
		}
	}
	return slog.GroupValue(out...)
}

// LogValue is how the config appears in a log: every setting, secrets
// masked.
func (c Config) LogValue() slog.Value {
	store := "embedded (SQLite)"
	if c.MongoURI != "" {
		store = "mongodb"
	}
	return slog.GroupValue(
		slog.String("store", store),
		slog.String("MONGO_URI", maskURI(c.MongoURI)),
		slog.String("HOST", c.Host),
		slog.Int("PORT", c.PostsPort),
		slog.Int("COMMENTS_PORT", c.CommentsPort),
		slog.Int("WEB_PORT", c.WebPort),
		slog.String("POSTS_URL", c.postsURL()),
		slog.String("COMMENTS_URL", c.commentsURL()),
		slog.String("BLOG_DATA_DIR", c.DataDir),
		slog.Int("BLOG_EMBED_LIMIT", c.EmbedLimit),
		slog.String("LOG_LEVEL", c.LogLevel.String()),
		slog.Duration("BLOG_SHUTDOWN_TIMEOUT", c.ShutdownTimeout),
		slog.String("BLOG_API_TOKEN", mask(c.APIToken)),
		slog.Int("BLOG_COMMENT_RATE", c.CommentRate),
		slog.Bool("BLOG_INSECURE", c.Insecure),
		slog.Duration("BLOG_CHANGELOG_RETENTION", c.ChangelogRetention),
		slog.String("BLOG_TRUSTED_PROXIES", c.TrustedProxies),
		slog.Int("BLOG_MAX_STREAMS", c.MaxStreams),
		slog.Int("BLOG_STREAMS_PER_CLIENT", c.StreamsPerClient),
		slog.Duration("BLOG_STREAM_LIFETIME", c.StreamLifetime),
		slog.Int("BLOG_LIST_BYTES", c.ListBytes),
		slog.Duration("BLOG_SESSION_IDLE", c.SessionIdle),
		slog.Int("BLOG_LOGIN_RATE", c.LoginRate),
		slog.Int("BLOG_LOGIN_GLOBAL_RATE", c.LoginGlobalRate),
	)
}
