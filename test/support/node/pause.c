/*
 * The pod sandbox's process (the image registry.k8s.io/pause:3.10 stands for): it holds the pod's
 * namespaces open and does nothing else. Built by images.ts with `gcc -static`, so the image needs
 * no libraries. SIGTERM and SIGINT end it with status 0 (the runtime stops sandboxes that way);
 * as PID 1 of a shared PID namespace it reaps the children re-parented to it.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
  (void)signo;
  _exit(0);
}

static void reap(int signo) {
  (void)signo;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {0};
  on_stop.sa_handler = stop;
  sigaction(SIGTERM, &on_stop, 0);
  sigaction(SIGINT, &on_stop, 0);
  struct sigaction on_child = {0};
  on_child.sa_handler = reap;
  on_child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &on_child, 0);
  for (;;) pause();
}
