import socket,sys,time
s=socket.create_connection(('127.0.0.1',int(sys.argv[1]))); s.sendall(sys.argv[2].encode().decode('unicode_escape').encode('latin1')); s.settimeout(float(sys.argv[3]) if len(sys.argv)>3 else 1)
d=b''; t0=time.time()
try:
  while True:
    x=s.recv(65536)
    if not x: d+=b'<EOF %.2fs>'%(time.time()-t0); break
    d+=x
except Exception as e: d+=b'<'+str(e).encode()+b' %.2fs>'%(time.time()-t0)
sys.stdout.write(d.decode('latin1')[:3000])
