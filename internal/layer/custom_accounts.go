package layer

import (
	"fmt"
	"strings"
)

// User is an account of /etc/passwd and /etc/shadow.
type User struct {
	// Name is the login name; required.
	Name string
	// UID and GID are the user's ids. A GID that no group has gets a group
	// of the user's name.
	UID, GID int
	// Home is the home directory; default /var/empty. A home other than
	// /var/empty is created (mode 0755, owned by UID:GID) unless the image
	// has it already.
	Home string
	// Shell is the login shell; default /bin/sh.
	Shell string
	// Gecos is the comment field; default empty.
	Gecos string
}

// Group is a group of /etc/group.
type Group struct {
	// Name is the group name; required.
	Name string
	// GID is the group id.
	GID int
	// Members are the names of the group's supplementary members.
	Members []string
}

// File is an extra file, directory or symlink of the customisation layer.

// addAccounts adds /etc/passwd, /etc/group, /etc/shadow and home
// directories.
func (b *customBuilder) addAccounts(users []User, groups []Group) error {
	us, err := accountUsers(users)
	if err != nil {
		return err
	}
	gs, err := accountGroups(groups, us)
	if err != nil {
		return err
	}
	if err := b.addAccountFiles(us, gs); err != nil {
		return err
	}
	return b.addHomes(us)
}

// accountOrder lists accounts in the order of the account files: root
// first, then the given ones in order; nobody, which comes last, is
// returned apart. A given root or nobody replaces the default one.
func accountOrder[T any](given []T, name func(T) string, root, nobody T) ([]T, T) {
	for _, a := range given {
		switch name(a) {
		case "root":
			root = a
		case "nobody":
			nobody = a
		}
	}
	order := []T{root}
	for _, a := range given {
		if name(a) != "nobody" {
			order = append(order, a)
		}
	}
	return order, nobody
}

// accountUsers returns the users of /etc/passwd: root, the configured
// users in order, nobody; each name once, with defaults filled in.
func accountUsers(users []User) ([]User, error) {
	root := User{Name: "root", Home: "/root", Gecos: "root"}
	nobody := User{Name: "nobody", UID: 65534, GID: 65534, Home: "/var/empty", Shell: "/sbin/nologin", Gecos: "nobody"}
	order, nobody := accountOrder(users, func(u User) string { return u.Name }, root, nobody)
	us := make([]User, 0, len(users)+2)
	names := make(map[string]bool)
	for _, u := range append(order, nobody) {
		if names[u.Name] {
			continue
		}
		u, err := checkUser(u)
		if err != nil {
			return nil, err
		}
		names[u.Name] = true
		us = append(us, u)
	}
	return us, nil
}

// checkUser fills in u's defaults and checks its fields.
func checkUser(u User) (User, error) {
	if err := checkField("user name", u.Name, false); err != nil {
		return u, err
	}
	if u.Home == "" {
		u.Home = "/var/empty"
	}
	if u.Shell == "" {
		u.Shell = "/bin/sh"
	}
	for _, f := range []struct{ what, v string }{{"home", u.Home}, {"shell", u.Shell}, {"gecos", u.Gecos}} {
		if err := checkField("user "+u.Name+" "+f.what, f.v, true); err != nil {
			return u, err
		}
	}
	return u, nil
}

// groupList collects the groups of /etc/group, each name once.
type groupList struct {
	gs    []Group
	names map[string]bool
	gids  map[int]bool
}

func (l *groupList) add(g Group) error {
	if l.names[g.Name] {
		return nil
	}
	if err := checkField("group name", g.Name, false); err != nil {
		return err
	}
	for _, m := range g.Members {
		if err := checkField("group "+g.Name+" member", m, false); err != nil {
			return err
		}
	}
	l.names[g.Name] = true
	l.gids[g.GID] = true
	l.gs = append(l.gs, g)
	return nil
}

// accountGroups returns the groups of /etc/group: root, the configured
// groups in order, a group of its name for each user whose primary group
// does not exist, nobody.
func accountGroups(groups []Group, us []User) ([]Group, error) {
	order, nobody := accountOrder(groups, func(g Group) string { return g.Name }, Group{Name: "root"}, Group{Name: "nobody", GID: 65534})
	l := groupList{gs: make([]Group, 0, len(groups)+len(us)), names: make(map[string]bool), gids: make(map[int]bool)}
	for _, g := range order {
		if err := l.add(g); err != nil {
			return nil, err
		}
	}
	for _, u := range us {
		if !l.gids[u.GID] && u.GID != nobody.GID && !l.names[u.Name] {
			if err := l.add(Group{Name: u.Name, GID: u.GID}); err != nil {
				return nil, err
			}
		}
	}
	if err := l.add(nobody); err != nil {
		return nil, err
	}
	return l.gs, nil
}

// addAccountFiles adds /etc/passwd, /etc/group and /etc/shadow.
func (b *customBuilder) addAccountFiles(us []User, gs []Group) error {
	var passwd, group, shadow strings.Builder
	for _, u := range us {
		fmt.Fprintf(&passwd, "%s:x:%d:%d:%s:%s:%s\n", u.Name, u.UID, u.GID, u.Gecos, u.Home, u.Shell)
		fmt.Fprintf(&shadow, "%s:!:1::::::\n", u.Name)
	}
	for _, g := range gs {
		fmt.Fprintf(&group, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
	}
	for _, f := range []struct {
		p    string
		mode int64
		s    string
	}{
		{"/etc/passwd", 0o644, passwd.String()},
		{"/etc/group", 0o644, group.String()},
		{"/etc/shadow", 0o640, shadow.String()},
	} {
		if err := b.addOurs(f.p, &node{kind: kindFile, mode: f.mode, content: []byte(f.s)}); err != nil {
			return err
		}
	}
	return nil
}

// addHomes adds the users' home directories: /var/empty (0555), root's
// (0700) and the others' (0755, owned by the user); / is never added.
func (b *customBuilder) addHomes(us []User) error {
	for _, u := range us {
		switch u.Home {
		case "/var/empty":
			if err := b.addOurs(u.Home, newDir(0o555, 0, 0)); err != nil {
				return err
			}
		case "/", "":
		default:
			mode := int64(0o755)
			if u.UID == 0 {
				mode = 0o700
			}
			if err := b.addOurs(u.Home, newDir(mode, u.UID, u.GID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkField rejects what would break the colon-separated account files.
func checkField(what, v string, emptyOK bool) error {
	if v == "" && !emptyOK {
		return fmt.Errorf("layer: empty %s", what)
	}
	if strings.ContainsAny(v, ":\n") {
		return fmt.Errorf("layer: %s %q contains ':' or a newline", what, v)
	}
	return nil
}
