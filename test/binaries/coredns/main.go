// CoreDNS for the test cluster's DNS, with only the plugins its Corefile uses: the Corefile of
// kustomize/coredns-k8s-external.yaml (kubernetes + k8s_external), plus `hosts` for the names of
// the tests' own servers outside the cluster (an upstream registry) — instead of CoreDNS' full
// plugin set and the cloud SDKs that come with it.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/k8s_external"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives: the plugins above in CoreDNS' plugin.cfg order, which is the order a query passes them.
var directives = []string{
	"reload", "ready", "health", "errors", "log", "loadbalance", "cache", "hosts", "k8s_external", "kubernetes", "loop", "forward",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
