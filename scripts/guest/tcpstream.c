/* tcpstream — TCP bulk throughput between two test guests.
 *
 * Usage: tcpstream recv PORT OUTFILE
 *          accept connections forever; for each, read until EOF and append
 *          "BYTES SECONDS" (first byte to EOF) to OUTFILE
 *        tcpstream send IP PORT SECONDS
 *          connect, write a 64 KiB buffer in a loop for SECONDS, close;
 *          print "BYTES SECONDS MB/s" (10^6 bytes)
 *
 * The guest's control channel (qv.ctl=1, verbs tcprecv/tcpsend/tcpgot in
 * scripts/guest/init) drives it; scripts/bench/firewall-throughput.sh
 * measures guest-to-guest throughput with and without firewall rules.
 * Built static by scripts/mkguest.sh; runs on the host too.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int port_of(const char *s)
{
	int p = atoi(s);

	if (p < 1 || p > 65535) {
		fprintf(stderr, "tcpstream: bad port %s\n", s);
		exit(2);
	}
	return p;
}

static int do_recv(int port, const char *out)
{
	static char buf[1 << 16];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);

	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4) < 0) {
		perror("tcpstream: listen");
		return 1;
	}
	for (;;) {
		int c = accept(ls, NULL, NULL);
		unsigned long long bytes = 0;
		double t0 = 0;
		ssize_t n;

		if (c < 0)
			continue;
		while ((n = read(c, buf, sizeof(buf))) > 0) {
			if (!bytes)
				t0 = now();
			bytes += (unsigned long long)n;
		}
		double dt = bytes ? now() - t0 : 0;
		close(c);
		FILE *f = fopen(out, "a");
		if (f) {
			fprintf(f, "%llu %.3f\n", bytes, dt);
			fclose(f);
		}
	}
}

static int do_send(const char *ip, int port, double secs)
{
	static char buf[1 << 16];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	unsigned long long bytes = 0;
	int s = socket(AF_INET, SOCK_STREAM, 0);

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "tcpstream: bad address %s\n", ip);
		return 2;
	}
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("tcpstream: connect");
		return 1;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 131 + 7);
	double t0 = now(), t;
	while ((t = now()) - t0 < secs) {
		ssize_t n = write(s, buf, sizeof(buf));
		if (n <= 0) {
			perror("tcpstream: write");
			return 1;
		}
		bytes += (unsigned long long)n;
	}
	close(s);
	printf("%llu %.3f %.2f\n", bytes, t - t0, (double)bytes / (t - t0) / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "recv"))
		return do_recv(port_of(argv[2]), argv[3]);
	if (argc == 5 && !strcmp(argv[1], "send"))
		return do_send(argv[2], port_of(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: tcpstream recv PORT OUTFILE | send IP PORT SECONDS\n");
	return 2;
}
