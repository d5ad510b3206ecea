package topics

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
)

// ViewsFile is the file LoadViews reads, relative to the root of the fs.FS.
const ViewsFile = "views.yaml"

// Action is what an event does to the item of its key in a view.
type Action string

// Actions of a view's apply table.
const (
	// Upsert replaces the item with the event's data.
	Upsert Action = "upsert"
	// Merge copies the event's non-null top-level data fields over the item, creating it when absent.
	Merge Action = "merge"
	// Delete removes the item.
	Delete Action = "delete"
)

// View is one declared local view: the items of one system, keyed per tenant by a data field.
type View struct {
	System      string
	Name        string
	Description string
	// Key is the top-level data field whose value keys the view's items within a tenant.
	Key string
	// Apply maps every event type that feeds the view to its action.
	Apply map[string]Action
	// EventTypes are Apply's keys, sorted.
	EventTypes []string
	// Topic is the topic carrying every type of Apply, as the catalog given to LoadViews names it.
	Topic string
	// Changelog is the view's compacted changelog topic, without any prefix (a catalog's WithPrefix
	// does not reach it: streams/views adds the prefix it is configured with).
	Changelog string
}

// Views is the validated content of ViewsFile.
type Views struct {
	// Views holds every view, sorted by system then name.
	Views []View
}

// ForSystem returns the views of system, sorted by name.
func (v *Views) ForSystem(system string) []View {
	var out []View
	for _, x := range v.Views {
		if x.System == system {
			out = append(out, x)
		}
	}
	return out
}

// Lookup returns the view name of system.
func (v *Views) Lookup(system, name string) (View, bool) {
	for _, x := range v.Views {
		if x.System == system && x.Name == name {
			return x, true
		}
	}
	return View{}, false
}

type viewsFile struct {
	Changelog string                         `yaml:"changelog"`
	Views     map[string]map[string]viewDecl `yaml:"views"`
}

type viewDecl struct {
	Description string            `yaml:"description"`
	Key         string            `yaml:"key"`
	Apply       map[string]string `yaml:"apply"`
}

// viewNameRe bounds a view name: it becomes a URL path segment, a bbolt bucket, a metric label and
// part of a topic name.
var viewNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// LoadViews reads ViewsFile from fsys and validates it against cat (a catalog loaded from the same
// declarations, with or without a prefix): every view belongs to a system of the catalog and reads
// only event types that system subscribes to, all routed to one topic; its key is a field name; its
// actions are upsert, merge or delete, and at least one is not delete. Errors wrap ErrInvalid and
// name the file and the key. Whether the key field exists in the schemas is checked by
// streams/views, which has them.
func LoadViews(fsys fs.FS, cat *Catalog) (*Views, error) {
	var f viewsFile
	if err := decodeStrict(fsys, ViewsFile, &f); err != nil {
		return nil, err
	}
	for _, ph := range []string{"{system}", "{view}"} {
		if !strings.Contains(f.Changelog, ph) {
			return nil, invalid(ViewsFile, "changelog", "must contain {system} and {view}, got %q", f.Changelog)
		}
	}
	out := &Views{}
	for _, sysName := range sortedKeys(f.Views) {
		sys, ok := cat.System(sysName)
		if !ok {
			return nil, invalid(ViewsFile, "views."+sysName, "%q is not a system of %s", sysName, CatalogFile)
		}
		for _, name := range sortedKeys(f.Views[sysName]) {
			v, err := loadView(cat, sys, name, f.Views[sysName][name], f.Changelog)
			if err != nil {
				return nil, err
			}
			out.Views = append(out.Views, v)
		}
	}
	return out, nil
}

func loadView(cat *Catalog, sys System, name string, d viewDecl, changelog string) (View, error) {
	key := "views." + sys.Name + "." + name
	if !viewNameRe.MatchString(name) {
		return View{}, invalid(ViewsFile, key, "view name must match %s", viewNameRe)
	}
	if !fieldRe.MatchString(d.Key) {
		return View{}, invalid(ViewsFile, key+".key", "%q is not a top-level data field name", d.Key)
	}
	if len(d.Apply) == 0 {
		return View{}, invalid(ViewsFile, key+".apply", "a view is fed by at least one event type")
	}
	v := View{System: sys.Name, Name: name, Description: d.Description, Key: d.Key, Apply: map[string]Action{}}
	creates := false
	for _, et := range sortedKeys(d.Apply) {
		k := key + ".apply." + et
		if !slices.Contains(sys.Subscribes, et) {
			return View{}, invalid(ViewsFile, k, "%s does not subscribe to %q (%s)%s", sys.Name, et, CatalogFile, DidYouMean(et, sys.Subscribes))
		}
		a := Action(d.Apply[et])
		switch a {
		case Upsert, Merge:
			creates = true
		case Delete:
		default:
			return View{}, invalid(ViewsFile, k, "action %q is not upsert, merge or delete", d.Apply[et])
		}
		t, _ := cat.TopicFor(et)
		if v.Topic != "" && t.Name != v.Topic {
			return View{}, invalid(ViewsFile, k, "%q is routed to %s, the view's other types to %s: a view reads one topic, so that its events keep their order",
				et, t.Name, v.Topic)
		}
		v.Topic = t.Name
		v.Apply[et] = a
		v.EventTypes = append(v.EventTypes, et)
	}
	if !creates {
		return View{}, invalid(ViewsFile, key+".apply", "every action is delete: nothing would ever be in the view")
	}
	v.Changelog = strings.NewReplacer("{system}", sys.Name, "{view}", name).Replace(changelog)
	if !topicRe.MatchString(v.Changelog) {
		return View{}, invalid(ViewsFile, "changelog", "%q is not a valid topic name for view %s", v.Changelog, key)
	}
	if _, clash := cat.Topic(v.Changelog); clash {
		return View{}, invalid(ViewsFile, "changelog", "%q of view %s is a declared topic", v.Changelog, key)
	}
	return v, nil
}

// String returns "<system>/<view>".
func (v View) String() string { return fmt.Sprintf("%s/%s", v.System, v.Name) }
