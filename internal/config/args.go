package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/credential"
)

// ExecArgs renders o back into the token command's flags, as --name=value,
// in the order credential.Options declares them. Only flags whose value differs
// from their default are emitted, and a zero value counts as unset (a
// credential.Options built in Go leaves defaults zero), so the zero Options, or
// one holding just the defaults, give no arguments. The token command is brokercred's default
// command, so the flags are the whole argument list.
func ExecArgs(o credential.Options) []string {
	if name, err := broker.Canonical(o.Protocol); err == nil {
		o.Protocol = name // an alias is written as the protocol's API name
	}
	var args []string
	for _, f := range changedFlags(o) {
		args = append(args, f.arg())
	}
	return args
}

// changedFlag is one setting of credential.Options that differs from its default.
type changedFlag struct {
	name  string // the long flag name, without dashes
	env   string // the environment variable that sets it; may be empty
	value reflect.Value
}

// arg renders the flag for a command line.
func (f changedFlag) arg() string {
	if f.value.Kind() == reflect.Bool && f.value.Bool() {
		return "--" + f.name
	}
	return "--" + f.name + "=" + formatValue(f.value)
}

// changedFlags lists o's fields whose kong flag is set and differs from its
// default, including those of embedded flag groups (the token-exchange
// settings).
func changedFlags(o credential.Options) []changedFlag {
	return structFlags(reflect.ValueOf(o))
}

func structFlags(v reflect.Value) []changedFlag {
	t := v.Type()
	var flags []changedFlag
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Tag.Get("kong") == "-" {
			continue
		}
		if _, embedded := sf.Tag.Lookup("embed"); embedded && sf.Type.Kind() == reflect.Struct {
			flags = append(flags, structFlags(v.Field(i))...)
			continue
		}
		name := sf.Tag.Get("name")
		if name == "" {
			continue
		}
		def := parseDefault(sf)
		if v.Field(i).IsZero() || reflect.DeepEqual(v.Field(i).Interface(), def.Interface()) {
			continue
		}
		flags = append(flags, changedFlag{name: name, env: sf.Tag.Get("env"), value: v.Field(i)})
	}
	return flags
}

var durationType = reflect.TypeFor[time.Duration]()

// parseDefault is the value kong gives sf when neither flag nor environment
// sets it. A tag it cannot read is a programming error in credential.Options,
// caught by this package's tests, so it panics.
func parseDefault(sf reflect.StructField) reflect.Value {
	def := reflect.New(sf.Type).Elem()
	tag, ok := sf.Tag.Lookup("default")
	if !ok {
		return def
	}
	var err error
	switch {
	case sf.Type == durationType:
		var d time.Duration
		d, err = time.ParseDuration(tag)
		def.SetInt(int64(d))
	case sf.Type.Kind() == reflect.String:
		def.SetString(tag)
	case sf.Type.Kind() == reflect.Bool:
		var b bool
		b, err = strconv.ParseBool(tag)
		def.SetBool(b)
	case def.CanInt():
		var n int64
		n, err = strconv.ParseInt(tag, 0, 64)
		def.SetInt(n)
	case def.CanUint():
		var n uint64
		n, err = strconv.ParseUint(tag, 0, 64)
		def.SetUint(n)
	case def.CanFloat():
		var x float64
		x, err = strconv.ParseFloat(tag, 64)
		def.SetFloat(x)
	case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.String:
		def.Set(reflect.ValueOf(strings.Split(tag, ",")).Convert(sf.Type))
	default:
		err = fmt.Errorf("type %s not supported", sf.Type)
	}
	if err != nil {
		panic(fmt.Sprintf("config: default of credential.Options.%s: %v", sf.Name, err))
	}
	return def
}

// formatValue renders v the way kong parses it back.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.String:
		return v.String()
	case v.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case v.CanInt():
		return strconv.FormatInt(v.Int(), 10)
	case v.CanUint():
		return strconv.FormatUint(v.Uint(), 10)
	case v.CanFloat():
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		return strings.Join(v.Convert(reflect.TypeFor[[]string]()).Interface().([]string), ",")
	}
	panic(fmt.Sprintf("config: cannot render a %s flag", v.Type()))
}
