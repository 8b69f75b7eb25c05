package config

import "github.com/alecthomas/kong"

// WithoutEnv is a kong option that makes the flags of the command named
// name, and of its subcommands, read the command line only: their env tags
// are dropped, so parsing never reads them and help never shows them. A
// generator writes what its flags say. The environment of whoever runs it
// (BROKERCRED_TARGET exported for a token call by hand, say) is no
// configuration of the cluster it describes: it would write prod's target
// into dev's Secret. A grammar without that command is left as it is.
func WithoutEnv(name string) kong.Option {
	return kong.PostBuild(func(k *kong.Kong) error {
		for _, n := range k.Model.Children {
			if n.Name == name {
				dropEnv(n)
			}
		}
		return nil
	})
}

// dropEnv empties the env tags of n's flags and positional arguments, and
// of its subcommands'. It runs before kong interpolates the tags, which
// copies Tag.Envs into Flag.Envs.
func dropEnv(n *kong.Node) {
	for _, f := range n.Flags {
		f.Envs = nil
		f.Tag.Envs = nil
	}
	for _, p := range n.Positional {
		p.Tag.Envs = nil
	}
	for _, c := range n.Children {
		dropEnv(c)
	}
}
