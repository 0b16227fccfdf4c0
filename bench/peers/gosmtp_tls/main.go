// gosink-tls: the shared harness's go-smtp 0.12.1 sink (../../../../shared/bench/peers/gosmtp)
// with STARTTLS, for the STARTTLS + AUTH workload of bench/run.sh. It differs from that peer
// only in what TLS needs: a certificate, and AUTH refused before STARTTLS (as smtpd does by
// default), so both servers do the same work per connection.
//
// Build offline from Debian's packages, as the harness builds its peer:
//   GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off \
//     go build -o gosink-tls main.go
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

func (b *backend) Login(_ *smtp.ConnectionState, user, pass string) (smtp.Session, error) {
	if user != "user" || pass != "pass" {
		return nil, errors.New("Invalid username or password")
	}
	return &session{}, nil
}

func (b *backend) AnonymousLogin(_ *smtp.ConnectionState) (smtp.Session, error) {
	return &session{}, nil
}

type session struct{}

func (s *session) Reset()                              {}
func (s *session) Logout() error                       { return nil }
func (s *session) Mail(string, smtp.MailOptions) error { return nil }
func (s *session) Rcpt(string) error                   { return nil }
func (s *session) Data(r io.Reader) error {
	_, err := io.Copy(ioutil.Discard, r)
	return err
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "listen address (loopback only)")
	cert := flag.String("cert", "", "PEM certificate chain")
	key := flag.String("key", "", "PEM private key")
	flag.Parse()

	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	be := &backend{}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	s.AllowInsecureAuth = false
	s.MaxMessageBytes = 64 << 20
	s.MaxRecipients = 1000
	s.ErrorLog = log.New(ioutil.Discard, "", 0)
	s.EnableAuth(sasl.Login, func(c *smtp.Conn) sasl.Server {
		return sasl.NewLoginServer(func(user, pass string) error {
			st := c.State()
			sess, err := be.Login(&st, user, pass)
			if err != nil {
				return err
			}
			c.SetSession(sess)
			return nil
		})
	})

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		s.Close()
		os.Exit(0)
	}()
	log.Printf("gosink-tls listening on %s", *addr)
	if err := s.Serve(l); err != nil {
		log.Println(err)
	}
}
