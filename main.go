// Command brokercred is a client-go exec credential plugin that trades the
// pod's ServiceAccount token at a token broker for a short-lived token for a
// remote cluster, and caches it across processes.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/brokercred/brokercred/internal/cache"
	"github.com/brokercred/brokercred/internal/caller"
	"github.com/brokercred/brokercred/internal/config"
	"github.com/brokercred/brokercred/internal/credential"
	"github.com/brokercred/brokercred/internal/install"
	"github.com/brokercred/brokercred/internal/plugin"
	"github.com/brokercred/brokercred/internal/run"
	"github.com/brokercred/brokercred/internal/secret"
)

// version and commit are set at release time with
// -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// globals are the flags every command takes.
type globals struct {
	Verbose bool `short:"v" env:"BROKERCRED_VERBOSE" help:"Print what each call did on stderr (never a token)."`
}

type cli struct {
	globals

	Token      tokenCmd      `cmd:"" default:"withargs" help:"Print an ExecCredential for --target (the default command)."`
	PrintToken printTokenCmd `cmd:"" name:"print-token" help:"Print the bare token for --target and a newline, for programs that are not client-go."`
	Run        runCmd        `cmd:"" help:"Run COMMAND with the token for --target in its environment (--env, default ARGOCD_AUTH_TOKEN), never on a command line."`
	Doctor     doctorCmd     `cmd:"" help:"Check the pod token, the way to the broker, the cache and a real token request; print what is wrong (never a token)."`
	Cache      cacheCmd      `cmd:"" help:"Inspect or clear the token cache."`
	Install    installCmd    `cmd:"" help:"Copy this binary into DIR (for an initContainer sharing an emptyDir)."`
	Config     configCmd     `cmd:"" help:"Print YAML that wires brokercred into Argo CD or kubectl (nothing is applied)."`
	Version    versionCmd    `cmd:"" help:"Print the version, commit and Go version."`
}

// tokenCLI is the part of cli a credential call needs. client-go starts
// brokercred for every credential, and kong builds the model of every
// command and flag on each start: 3.7 ms for cli, 0.4 ms for this
// (BenchmarkParse), about a sixth of a whole cache hit.
type tokenCLI struct {
	globals

	Token tokenCmd `cmd:"" default:"withargs" help:"Print an ExecCredential for --target (the default command)."`
}

type tokenCmd struct {
	credential.Options
}

func (c *tokenCmd) Run(g *globals, secrets *secret.Set) error {
	env := credential.Env{
		ExecInfo: os.Getenv(plugin.ExecInfoEnv),
		Stdout:   os.Stdout,
		Log:      logger(g.Verbose, secrets),
		Secrets:  secrets,
	}
	if env.ExecInfo != "" { // only client-go's calls are judged by whom they serve
		env.Caller = caller.Name(os.Getppid(), os.Args[1:], os.Environ(), env.ExecInfo)
	}
	return credential.Run(context.Background(), c.Options, env)
}

type printTokenCmd struct {
	credential.Options
}

func (c *printTokenCmd) Run(g *globals, secrets *secret.Set) error {
	cred, err := credential.Get(context.Background(), c.Options, credential.Env{Log: logger(g.Verbose, secrets), Secrets: secrets})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, cred.Value)
	return err
}

type runCmd struct {
	credential.Options
	EnvName string   `name:"env" default:"ARGOCD_AUTH_TOKEN" placeholder:"NAME" help:"Environment variable that carries the token to COMMAND."`
	Command []string `arg:"" optional:"" passthrough:"" placeholder:"COMMAND [ARG...]" help:"The command to run, after --."`
}

// Run checks the command first, so that a mistake costs no broker request,
// then gets the token and becomes the command.
func (c *runCmd) Run(g *globals, secrets *secret.Set) error {
	cmd, err := run.Prepare(c.Command, c.EnvName)
	if err != nil {
		return err
	}
	cred, err := credential.Get(context.Background(), c.Options, credential.Env{Log: logger(g.Verbose, secrets), Secrets: secrets})
	if err != nil {
		return err
	}
	return cmd.Exec(cred.Value, os.Environ())
}

type doctorCmd struct {
	credential.Options
	Output string `name:"output" short:"o" enum:"text,json" default:"text" help:"Report format: ${enum}."`
}

func (c *doctorCmd) Run(g *globals, secrets *secret.Set) error {
	report := credential.Doctor(context.Background(), c.Options, credential.Env{
		ExecInfo: os.Getenv(plugin.ExecInfoEnv),
		Log:      logger(g.Verbose, secrets),
		Secrets:  secrets,
	})
	if err := credential.WriteReport(os.Stdout, report, c.Output); err != nil {
		return err
	}
	if n := report.Failed(); n > 0 {
		return fmt.Errorf("doctor found %d problem(s); fix the ✗ lines above in order", n)
	}
	return nil
}

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Printf("brokercred %s (commit %s, %s)\n", version, buildCommit(), runtime.Version())
	return nil
}

// buildCommit is the commit set by the release, else the one Go recorded
// when building from a checkout.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

type cacheCmd struct {
	List  cacheListCmd  `cmd:"" help:"List cached tokens (never the tokens themselves)."`
	Clear cacheClearCmd `cmd:"" help:"Remove cached tokens."`
}

type cacheDirFlag struct {
	CacheDir string `name:"cache-dir" env:"BROKERCRED_CACHE_DIR" placeholder:"DIR" help:"Token cache directory (default: $XDG_CACHE_HOME/brokercred)."`
}

type cacheListCmd struct{ cacheDirFlag }

func (c *cacheListCmd) Run() error {
	cc, err := cache.Open(c.CacheDir)
	if err != nil {
		return err
	}
	defer cc.Close()
	entries, err := cc.List()
	if err != nil {
		return err
	}
	return credential.WriteCacheList(os.Stdout, entries, time.Now())
}

type cacheClearCmd struct {
	cacheDirFlag
	Target string `name:"target" placeholder:"NAME" help:"Remove only this target's entries."`
}

func (c *cacheClearCmd) Run() error {
	cc, err := cache.Open(c.CacheDir)
	if err != nil {
		return err
	}
	defer cc.Close()
	n, err := cc.Clear(credential.TargetMatch(c.Target))
	fmt.Fprintf(os.Stderr, "removed %d cache entries\n", n)
	return err
}

type installCmd struct {
	Dir string `arg:"" placeholder:"DIR" help:"Directory to install into, for example the emptyDir mount /custom-tools."`
}

func (c *installCmd) Run() error {
	path, err := install.Self(c.Dir)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

type configCmd struct {
	ArgocdCluster          argocdClusterCmd          `cmd:"" name:"argocd-cluster" help:"Print an Argo CD cluster Secret that gets its token from brokercred."`
	Kubeconfig             kubeconfigCmd             `cmd:"" help:"Print a kubeconfig whose user gets its token from brokercred."`
	HelmValues             helmValuesCmd             `cmd:"" name:"helm-values" help:"Print argo-cd Helm chart values that install brokercred into the controller and server; broker flags given here become BROKERCRED_* env shared by all clusters."`
	ClusterProfileProvider clusterProfileProviderCmd `cmd:"" name:"clusterprofile-provider" help:"Print a ClusterProfile access provider file (JSON) that runs brokercred for every ClusterProfile listing it."`
	ArgocdAPI              argocdAPICmd              `cmd:"" name:"argocd-api" help:"Print argocd-cm's Dex connector, argocd-rbac-cm grants and a CI pod that calls Argo CD's own API as its ServiceAccount (brokercred run -- argocd ...)."`
}

type argocdClusterCmd struct{ config.ArgoCDCluster }

// Run prints the Secret, or with --from-secret the converted Secrets, with
// a line on stderr for each Secret left out.
func (c *argocdClusterCmd) Run() error { return printOutput(c.Render(os.Stdin, os.Stderr)) }

type kubeconfigCmd struct{ config.Kubeconfig }

func (c *kubeconfigCmd) Run() error { return printOutput(c.YAML()) }

type helmValuesCmd struct{ config.HelmValues }

// Run renders the values; without --image the initContainer runs this
// binary's own release image.
func (c *helmValuesCmd) Run() error {
	c.Version = version
	return printOutput(c.YAML())
}

type clusterProfileProviderCmd struct{ config.ClusterProfileProvider }

func (c *clusterProfileProviderCmd) Run() error { return printOutput(c.JSON()) }

type argocdAPICmd struct{ config.ArgoCDAPI }

func (c *argocdAPICmd) Run() error { return printOutput(c.YAML()) }

func printOutput(out []byte, err error) error {
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

// logger writes diagnostics to stderr under -v, scrubbed of every secret of
// the call, and discards them otherwise.
func logger(verbose bool, secrets *secret.Set) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(secret.Writer{W: os.Stderr, Set: secrets}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func main() {
	args := os.Args[1:]
	if isTokenCall(args) {
		var c tokenCLI
		parseAndRun(&c, &c.globals, args)
		return
	}
	var c cli
	parseAndRun(&c, &c.globals, args)
}

func parseAndRun(grammar any, g *globals, args []string) {
	secrets := new(secret.Set)
	parser := kong.Must(grammar, kongOptions(g, secrets)...)
	ctx, err := parser.Parse(args)
	parser.FatalIfErrorf(err)
	if err := ctx.Run(); err != nil {
		// Every error passes the call's secrets through one last scrub:
		// whatever a broker or a file said, no token reaches stderr.
		fmt.Fprintf(os.Stderr, "brokercred: error: %s\n", secrets.Scrub(oneLine(err.Error())))
		os.Exit(1)
	}
}

// kongOptions are the options every parser of brokercred's CLI is built
// with: its name, the registry's protocol names, the values commands
// receive, and config commands that read their flags only.
func kongOptions(g *globals, secrets *secret.Set) []kong.Option {
	return []kong.Option{
		kong.Name("brokercred"),
		kong.Description("Exec credential plugin: trades the pod's ServiceAccount token at a token broker for a short-lived remote cluster token."),
		kong.Vars(credential.KongVars()),
		kong.Bind(g, secrets),
		config.WithoutEnv("config"),
	}
}

// oneLine keeps an error on the single line a person reads in Argo CD.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// isTokenCall reports whether args can only mean the token command: no
// other command's name and no request for help. A false answer costs only
// speed: the full CLI parses a token call the same way.
func isTokenCall(args []string) bool {
	others := commandNames(reflect.TypeFor[cli]())
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "help" || others[a] {
			return false
		}
	}
	return true
}

// commandNames are the names of t's commands other than token, as kong
// derives them from the fields tagged cmd.
func commandNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if _, ok := f.Tag.Lookup("cmd"); !ok || f.Name == "Token" {
			continue
		}
		name := f.Tag.Get("name")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		names[name] = true
	}
	return names
}
