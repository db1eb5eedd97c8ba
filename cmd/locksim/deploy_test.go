package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/locksim/locksim/report"
	"github.com/locksim/locksim/scenario"
)

const deployDir = "../../deploy/kubernetes/"

// k8sObject is the part of a Kubernetes object the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		CompletionMode string `yaml:"completionMode"`
		Completions    int    `yaml:"completions"`
		Template       struct {
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	Containers []struct {
		Command         []string `yaml:"command"`
		Args            []string `yaml:"args"`
		SecurityContext struct {
			Privileged bool `yaml:"privileged"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name string `yaml:"name"`
		PVC  struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

func loadK8s(t *testing.T, file string) k8sObject {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var o k8sObject
	if err := yaml.Unmarshal(data, &o); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return o
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// The Indexed Jobs under deploy/kubernetes split the work as they say:
// --shard takes the completion index, of as many shards as completions,
// each shard writes a directory of its own on the shared volume, real
// runs are privileged. Then the simulator Job's shards and the merge Job's
// command, run here as the pods would run them (the image's paths mapped
// to this checkout and a temporary directory, 3 seeds a cell in place of
// 100,000), give the report of the unsharded comparison.
func TestKubernetesManifests(t *testing.T) {
	pvc := loadK8s(t, "results-pvc.yaml")
	if pvc.Kind != "PersistentVolumeClaim" {
		t.Fatalf("results-pvc.yaml: kind %q", pvc.Kind)
	}
	for _, f := range []string{"sim-job.yaml", "real-job.yaml"} {
		j := loadK8s(t, f)
		if j.Kind != "Job" || j.Spec.CompletionMode != "Indexed" || j.Spec.Completions < 2 || len(j.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: kind %q, completionMode %q, completions %d", f, j.Kind, j.Spec.CompletionMode, j.Spec.Completions)
		}
		c := j.Spec.Template.Spec.Containers[0]
		if want := fmt.Sprintf("$(JOB_COMPLETION_INDEX)/%d", j.Spec.Completions); flagValue(c.Args, "--shard") != want {
			t.Errorf("%s: --shard %q, want %q", f, flagValue(c.Args, "--shard"), want)
		}
		out := flagValue(c.Args, "--out")
		if !strings.Contains(out, "$(JOB_COMPLETION_INDEX)") {
			t.Errorf("%s: --out %q is the same directory for every shard", f, out)
		}
		if len(c.VolumeMounts) != 1 || !strings.HasPrefix(out, c.VolumeMounts[0].MountPath+"/") {
			t.Errorf("%s: --out %q is not on the mounted volume %+v", f, out, c.VolumeMounts)
		}
		if v := j.Spec.Template.Spec.Volumes; len(v) != 1 || v[0].PVC.ClaimName != pvc.Metadata.Name {
			t.Errorf("%s: volumes %+v, want the claim %q", f, v, pvc.Metadata.Name)
		}
		if real := slices.Contains(c.Args, "--real"); real != c.SecurityContext.Privileged {
			t.Errorf("%s: --real %v but privileged %v", f, real, c.SecurityContext.Privileged)
		}
	}

	// Run the simulator Job's shards and the merge Job here.
	abs, err := filepath.Abs(scenarios)
	if err != nil {
		t.Fatal(err)
	}
	results := t.TempDir()
	local := func(args []string, index string) []string {
		var out []string
		for _, a := range args {
			a = strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", index)
			a = strings.Replace(a, "/work/scenarios", abs, 1)
			a = strings.Replace(a, "/results", results, 1)
			out = append(out, a)
		}
		if i := slices.Index(out, "--seeds"); i >= 0 {
			out[i+1] = "3"
		}
		return out
	}
	sj := loadK8s(t, "sim-job.yaml")
	sc := sj.Spec.Template.Spec.Containers[0]
	if len(sc.Command) != 1 || sc.Command[0] != "locksim" {
		t.Fatalf("sim-job.yaml: command %v", sc.Command)
	}
	for i := range sj.Spec.Completions {
		if code, stdout, stderr := runCLI(local(sc.Args, fmt.Sprint(i))...); code != exitOK {
			t.Fatalf("shard %d: exit %d\n%s%s", i, code, stdout, stderr)
		}
	}
	mj := loadK8s(t, "merge-job.yaml")
	mc := mj.Spec.Template.Spec.Containers[0]
	if len(mc.Args) != 1 {
		t.Fatalf("merge-job.yaml: args %v", mc.Args)
	}
	line, _, _ := strings.Cut(mc.Args[0], ";")
	fields := strings.Fields(line)
	if fields[0] != "locksim" || fields[1] != "merge" {
		t.Fatalf("merge-job.yaml: %q", line)
	}
	if code, stdout, stderr := runCLI(local(fields[1:], "")...); code != exitViolations {
		t.Fatalf("merge: exit %d\n%s%s", code, stdout, stderr)
	}
	reportDir := strings.Replace(flagValue(fields, "--out"), "/results", results, 1)
	whole := t.TempDir()
	if code, stdout, stderr := runCLI("compare", "--sim", "--scenarios", abs, "--seeds", "3", "--out", whole, "--no-progress"); code != exitViolations {
		t.Fatalf("unsharded: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, f := range []string{report.SummaryFile, report.MarkdownFile, report.HTMLFile} {
		a, err := os.ReadFile(filepath.Join(reportDir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(whole, f))
		if string(a) != string(b) {
			t.Errorf("%s of the Jobs differs from the unsharded comparison's", f)
		}
	}
	readJUnit(t, strings.Replace(flagValue(fields, "--junit"), "/results", results, 1))
}

// docs/ci-example.yml installs locksim with go install, runs a comparison
// against the committed baseline that passes (run here on the control
// scenario, whose cells the baseline lists), and keeps the report and the
// JUnit file it writes, failure or not.
func TestCIExample(t *testing.T) {
	data, err := os.ReadFile("../../docs/ci-example.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				If   string            `yaml:"if"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	if len(wf.Jobs) != 1 {
		t.Fatalf("%d jobs", len(wf.Jobs))
	}
	var install, compare, upload bool
	dir := t.TempDir()
	var out, junit string
	for _, job := range wf.Jobs {
		for _, st := range job.Steps {
			switch {
			case strings.HasPrefix(st.Run, "go install github.com/locksim/locksim/cmd/locksim@"):
				install = true
			case strings.HasPrefix(st.Run, "locksim compare "):
				compare = true
				args := strings.Fields(st.Run)[1:]
				if !slices.Contains(args, "--check-baseline") {
					t.Errorf("the comparison does not check the baseline: %q", st.Run)
				}
				out, junit = flagValue(args, "--out"), flagValue(args, "--junit")
				for flag, local := range map[string]string{"--scenarios": scenarios + "control.yaml", "--baseline": "../../reports/baseline.json",
					"--out": filepath.Join(dir, "report"), "--junit": filepath.Join(dir, "junit.xml")} {
					i := slices.Index(args, flag)
					if i < 0 {
						t.Fatalf("no %s in %q", flag, st.Run)
					}
					args[i+1] = local
				}
				if code, stdout, stderr := runCLI(args...); code != exitOK {
					t.Fatalf("locksim %v: exit %d\n%s%s", args, code, stdout, stderr)
				}
				control, err := scenario.Load(scenarios + "control.yaml")
				if err != nil {
					t.Fatal(err)
				}
				if j := readJUnit(t, filepath.Join(dir, "junit.xml")); j.Tests != len(control.Backends) || j.Failures != 0 {
					t.Errorf("JUnit: %d tests, %d failures; want one test per backend of control (%d), none failing", j.Tests, j.Failures, len(control.Backends))
				}
				if _, err := os.Stat(filepath.Join(dir, "report", report.HTMLFile)); err != nil {
					t.Error(err)
				}
			case strings.HasPrefix(st.Uses, "actions/upload-artifact@"):
				upload = st.If == "always()" && strings.Contains(st.With["path"], out) && strings.Contains(st.With["path"], junit) && out != "" && junit != ""
			}
		}
	}
	if !install || !compare || !upload {
		t.Errorf("go install step %v, comparison step %v, artifact step keeping --out and --junit always %v", install, compare, upload)
	}
}
