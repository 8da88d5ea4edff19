// An @grpc/grpc-js server and client for the HTTP/2 recordings: the same
// service as grpc_demo.py (raw-bytes messages), a second implementation.
//
//   node demo.js server PORT
//   node demo.js client PORT
const grpc = require('@grpc/grpc-js');

const raw = (x) => x;
const method = (name, requestStream, responseStream) => ({
  path: `/demo.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});
const service = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Fail: method('Fail', false, false),
};

function serve(port) {
  const server = new grpc.Server();
  server.addService(service, {
    Unary: (call, cb) => cb(null, Buffer.from(call.request).reverse()),
    ServerStream: (call) => {
      const n = call.request[0];
      for (let i = 0; i < n; i++) call.write(Buffer.alloc(20 + i, 97 + i));
      call.end();
    },
    ClientStream: (call, cb) => {
      let total = 0;
      call.on('data', (m) => { total += m.length; });
      call.on('end', () => {
        const out = Buffer.alloc(4);
        out.writeUInt32BE(total);
        cb(null, out);
      });
    },
    Fail: (call, cb) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'denied: 50% off' }),
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log('serving');
  });
}

function client(port) {
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const assert = (ok, what) => { if (!ok) { console.error('failed:', what); process.exit(1); } };
  c.Unary(Buffer.from('hello grpc-js'), (err, res) => {
    assert(!err && res.toString() === 'sj-cprg olleh', 'Unary');
    const sizes = [];
    const ss = c.ServerStream(Buffer.from([4]));
    ss.on('data', (m) => sizes.push(m.length));
    ss.on('end', () => {
      assert(sizes.join(',') === '20,21,22,23', `ServerStream ${sizes}`);
      const cs = c.ClientStream((err2, res2) => {
        assert(!err2 && res2.readUInt32BE(0) === 700, 'ClientStream');
        c.Fail(Buffer.from('x'), (err3) => {
          assert(err3 && err3.code === grpc.status.PERMISSION_DENIED, 'Fail');
          c.close();
        });
      });
      for (const n of [300, 400]) cs.write(Buffer.alloc(n, 122));
      cs.end();
    });
  });
}

({ server: serve, client })[process.argv[2]](Number(process.argv[3]));
