/* probe_feat: which BPF program types load here (prints one line each) */
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
int main(void){
  enum bpf_prog_type t[]={BPF_PROG_TYPE_KPROBE,BPF_PROG_TYPE_TRACEPOINT,BPF_PROG_TYPE_RAW_TRACEPOINT,BPF_PROG_TYPE_TRACING,BPF_PROG_TYPE_SOCKET_FILTER};
  const char*n[]={"kprobe/uprobe","tracepoint","raw_tracepoint","tracing(fentry)","socket_filter"};
  for(int i=0;i<5;i++) printf("%-16s %d\n",n[i],libbpf_probe_bpf_prog_type(t[i],NULL));
  printf("ringbuf map %d\n", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF,NULL));
  printf("bpf_loop helper %d\n", libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE,BPF_FUNC_loop,NULL));
  printf("get_attach_cookie %d\n", libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE,BPF_FUNC_get_attach_cookie,NULL));
  return 0;}
