package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// No Docker engine runs where the tests do, so the deploy recipe is checked
// by loading compose.yaml with the Compose specification's own library and
// reading the Dockerfile's instructions; neither is built or started here.

const seedReplicaSet = "rs0"

var seedPorts = []string{"27017", "27018", "27019"}

func loadCompose(t *testing.T, env ...string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../../compose.yaml"},
		cli.WithName("blog"), cli.WithWorkingDirectory("../.."), cli.WithEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(t.Context())
}

func TestComposeFile(t *testing.T) {
	if _, err := loadCompose(t); err == nil || !strings.Contains(err.Error(), "BLOG_API_TOKEN") {
		t.Fatalf("loads without BLOG_API_TOKEN (services on 0.0.0.0 need one): %v", err)
	}
	p, err := loadCompose(t, "BLOG_API_TOKEN=secret")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.ServiceNames(), []string{"comments", "mongo1", "mongo2", "mongo3", "posts", "web"}; !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}

	// The replica set: three members on the seed's ports, set rs0, each
	// checked for health, initiated by mongo1's health check.
	for i, port := range seedPorts {
		name := "mongo" + string(rune('1'+i))
		s := p.Services[name]
		cmd := strings.Join(s.Command, " ")
		if !strings.Contains(cmd, "--replSet "+seedReplicaSet) || !strings.Contains(cmd, "--port "+port) {
			t.Errorf("%s runs %q, want --replSet %s --port %s", name, cmd, seedReplicaSet, port)
		}
		if !publishes(s, port) {
			t.Errorf("%s publishes %+v, want %s", name, s.Ports, port)
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no health check", name)
		}
	}
	initiate := strings.Join(p.Services["mongo1"].HealthCheck.Test, " ")
	if !strings.Contains(initiate, "rs.initiate") || !strings.Contains(initiate, `_id: "`+seedReplicaSet+`"`) {
		t.Errorf("mongo1's health check does not initiate %s: %s", seedReplicaSet, initiate)
	}

	// The services: MONGO_URI names every member, the set and the seed's
	// database; each is health-checked by the binary on its own /readyz
	// and starts once the replica set has a primary.
	for name, port := range map[string]string{"comments": "4001", "posts": "4000", "web": "8080"} {
		s := p.Services[name]
		if !publishes(s, port) {
			t.Errorf("%s publishes %+v, want %s", name, s.Ports, port)
		}
		hc := ""
		if s.HealthCheck != nil {
			hc = strings.Join(s.HealthCheck.Test, " ")
		}
		if want := "CMD blog healthcheck http://127.0.0.1:" + port + "/readyz"; hc != want {
			t.Errorf("%s health check %q, want %q", name, hc, want)
		}
		if s.Build == nil || s.Command[0] != name {
			t.Errorf("%s: build %v, command %v", name, s.Build, s.Command)
		}
		if tok := s.Environment["BLOG_API_TOKEN"]; tok == nil || *tok != "secret" {
			t.Errorf("%s gets no BLOG_API_TOKEN", name)
		}
		if name == "web" {
			for _, dep := range []string{"posts", "comments"} {
				if s.DependsOn[dep].Condition != types.ServiceConditionHealthy {
					t.Errorf("web does not wait for a healthy %s: %+v", dep, s.DependsOn)
				}
			}
			continue
		}
		if s.DependsOn["mongo1"].Condition != types.ServiceConditionHealthy {
			t.Errorf("%s does not wait for the replica set: %+v", name, s.DependsOn)
		}
		uri := s.Environment["MONGO_URI"]
		if uri == nil {
			t.Fatalf("%s has no MONGO_URI", name)
		}
		u, err := url.Parse(*uri)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "mongodb" || u.Path != "/test" || u.Query().Get("replicaSet") != seedReplicaSet {
			t.Errorf("%s MONGO_URI %s: want the seed's database test and replicaSet=%s", name, *uri, seedReplicaSet)
		}
		hosts := strings.Split(u.Host, ",")
		for i, port := range seedPorts {
			want := "mongo" + string(rune('1'+i)) + ":" + port
			if !slices.Contains(hosts, want) || !strings.Contains(initiate, `"`+want+`"`) {
				t.Errorf("%s MONGO_URI %s or the set's members lack %s", name, *uri, want)
			}
		}
	}
}

func publishes(s types.ServiceConfig, port string) bool {
	for _, p := range s.Ports {
		if p.Published == port && strconv.FormatUint(uint64(p.Target), 10) == port {
			return true
		}
	}
	return false
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestDockerfile reads the Dockerfile's instructions (continuation lines
// joined): a static build, a non-root final stage, and a health check on
// /readyz run by the binary itself.
func TestDockerfile(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var instrs []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	final := instrs
	for i, in := range instrs {
		if strings.HasPrefix(in, "FROM ") {
			final = instrs[i:]
		}
	}
	has := func(list []string, re string) bool {
		return slices.ContainsFunc(list, regexp.MustCompile(re).MatchString)
	}
	for _, c := range []struct{ name, re string }{
		{"static-build", `^RUN .*CGO_ENABLED=0 go build .*\./cmd/blog`},
	} {
		if !has(instrs, c.re) {
			t.Errorf("%s: no instruction matches %s", c.name, c.re)
		}
	}
	for _, c := range []struct{ name, re string }{
		{"non-root", `^USER [1-9][0-9]*(:[0-9]+)?$`},
		{"healthcheck-readyz", `^HEALTHCHECK .*CMD \["blog", "healthcheck", "http://127\.0\.0\.1:4000/readyz"\]`},
		{"entrypoint", `^ENTRYPOINT \["blog"\]`},
	} {
		if !has(final, c.re) {
			t.Errorf("%s: no instruction of the final stage matches %s", c.name, c.re)
		}
	}
}

// TestHealthcheckCommand: `blog healthcheck URL` succeeds on 200 and fails
// otherwise, as a container health check needs.
func TestHealthcheckCommand(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		status int
		ok     bool
	}{{"ready-200", 200, true}, {"unready-503", 503, false}} {
		t.Run(tc.name, func(t *testing.T) {
			status = tc.status
			var out strings.Builder
			err := run(t.Context(), []string{"blog", "healthcheck", srv.URL + "/readyz"}, func(string) string { return "" }, &out, &out)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
	srv.Close()
	if err := run(t.Context(), []string{"blog", "healthcheck", srv.URL + "/readyz"}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{}); err == nil {
		t.Fatal("healthcheck of a closed server succeeded")
	}
}
