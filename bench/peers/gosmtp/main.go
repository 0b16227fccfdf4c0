// gosink: an emersion/go-smtp sink for bench/run.sh, built offline against Debian's packages
// (go-smtp 0.12.1, go-sasl), in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build -o gosink main.go
//
// It accepts every message and discards it. AUTH PLAIN and LOGIN take user/pass. With -cert and
// -key it offers STARTTLS, and with -implicit-addr it also listens for implicit TLS; then AUTH
// is refused before TLS unless -insecure-auth, as smtpd does by default.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"io/ioutil"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

type backend struct{}

func (backend) Login(_ *smtp.ConnectionState, user, pass string) (smtp.Session, error) {
	if user != "user" || pass != "pass" {
		return nil, errors.New("invalid credentials")
	}
	return session{}, nil
}

func (backend) AnonymousLogin(_ *smtp.ConnectionState) (smtp.Session, error) {
	return session{}, nil
}

type session struct{}

func (session) Reset()                              {}
func (session) Logout() error                       { return nil }
func (session) Mail(string, smtp.MailOptions) error { return nil }
func (session) Rcpt(string) error                   { return nil }
func (session) Data(r io.Reader) error {
	_, err := io.Copy(ioutil.Discard, r)
	return err
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "listen address (loopback)")
	implicit := flag.String("implicit-addr", "", "implicit-TLS listen address (needs -cert)")
	cert := flag.String("cert", "", "PEM certificate chain: offers STARTTLS")
	key := flag.String("key", "", "PEM private key of -cert")
	insecure := flag.Bool("insecure-auth", true, "offer AUTH without TLS")
	flag.Parse()

	be := backend{}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = *insecure
	s.MaxMessageBytes = 64 << 20
	s.MaxRecipients = 1000
	s.ErrorLog = log.New(ioutil.Discard, "", 0)
	s.EnableAuth(sasl.Login, func(c *smtp.Conn) sasl.Server {
		return sasl.NewLoginServer(func(user, pass string) error {
			st := c.State()
			sess, err := be.Login(&st, user, pass)
			if err == nil {
				c.SetSession(sess)
			}
			return err
		})
	})
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	}

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *implicit != "" {
		if s.TLSConfig == nil {
			log.Fatal("-implicit-addr needs -cert and -key")
		}
		il, err := tls.Listen("tcp", *implicit, s.TLSConfig)
		if err != nil {
			log.Fatal(err)
		}
		go func() { log.Println(s.Serve(il)) }()
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		os.Exit(0)
	}()
	log.Printf("gosink listening on %s", *addr)
	log.Println(s.Serve(l))
}
