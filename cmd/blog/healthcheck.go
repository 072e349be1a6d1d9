package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheck is `blog healthcheck [URL]`: it asks URL (default: this
// machine's posts service, PORT, at /readyz) and succeeds only on a 200
// within 3 seconds. Container images of the blog carry no curl or shell,
// so a Dockerfile's HEALTHCHECK and compose's healthcheck run this.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var url string
	switch len(args) {
	case 0:
		cfg, _, err := loadConfig("blog healthcheck", nil, getenv, stdout, nil, "port", "host")
		if err != nil {
			return err
		}
		url = serviceURL(cfg.Host, cfg.PostsPort) + "/readyz"
	case 1:
		url = args[0]
	default:
		return fmt.Errorf("usage: blog healthcheck [URL], not %q", args)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", url, res.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, res.Status)
	return nil
}
