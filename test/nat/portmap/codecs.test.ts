// Port mapping codecs: byte layouts from RFC 6886 (NAT-PMP, section 3) and RFC 6887 (PCP, sections 7, 11),
// written out field by field, and UPnP IGD text as miniupnpd sends it. Bad replies give a named PortmapError.
import { describe, expect, it } from "vitest";
import * as pmp from "../../../src/nat/portmap/nat-pmp.js";
import * as pcp from "../../../src/nat/portmap/pcp.js";
import * as upnp from "../../../src/nat/portmap/upnp.js";
import { PortmapError } from "../../../src/nat/portmap/errors.js";
import { parseProcNetRoute } from "../../../src/nat/portmap/gateway.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

function expectPortmapError(fn: () => unknown, code: string, text: RegExp): void {
  try { fn(); } catch (err) {
    expect(err).toBeInstanceOf(PortmapError);
    expect((err as PortmapError).code).toBe(code);
    expect((err as Error).message).toMatch(text);
    return;
  }
  throw new Error("expected a PortmapError");
}

describe("NAT-PMP (RFC 6886)", () => {
  it("encodes the external address request (3.2: version 0, opcode 0)", () => {
    expect(pmp.encodeExternalAddressRequest()).toEqual(hex("00 00"));
  });

  it("encodes a UDP map request (3.3) and a delete (3.4: lifetime 0, external port 0)", () => {
    // version 0, op 1, reserved 0, internal port 41641, suggested external 41641, lifetime 7200
    expect(pmp.encodeMapRequest(41641, 41641, 7200)).toEqual(hex("00 01 0000 a2a9 a2a9 00001c20"));
    expect(pmp.encodeMapRequest(41641, 0, 0)).toEqual(hex("00 01 0000 a2a9 0000 00000000"));
  });

  it("decodes the external address and map responses (3.2, 3.3)", () => {
    // version 0, op 128, result 0, epoch 13401, address 198.18.3.2
    expect(pmp.decodeExternalAddressResponse(hex("00 80 0000 00003459 c6120302"))).toEqual({ epoch: 13401, address: "198.18.3.2" });
    // version 0, op 129, result 0, epoch, internal 41641, mapped external 50000, lifetime 3600
    expect(pmp.decodeMapResponse(hex("00 81 0000 00003459 a2a9 c350 00000e10"))).toEqual({ epoch: 13401, internalPort: 41641, externalPort: 50000, lifetimeS: 3600 });
  });

  it("names a non-success result (miniupnpd's 'network failure' for a gateway without a public address)", () => {
    expectPortmapError(() => pmp.decodeExternalAddressResponse(hex("00 80 0003 00003459 00000000")), "refused", /result 3 \(network failure\)/);
    expectPortmapError(() => pmp.decodeMapResponse(hex("00 81 0002 00000001 a2a9 0000 00000000")), "refused", /not authorized/);
  });

  it("rejects truncated, wrong-version and wrong-opcode answers without a crash", () => {
    expectPortmapError(() => pmp.decodeMapResponse(hex("00")), "malformed", /shorter than a header/);
    expectPortmapError(() => pmp.decodeMapResponse(hex("00 81 0000 00003459 a2a9")), "malformed", /expected 16/);
    expectPortmapError(() => pmp.decodeMapResponse(hex("02 81 0000 00003459 a2a9 c350 00000e10")), "malformed", /version 2/);
    expectPortmapError(() => pmp.decodeMapResponse(hex("00 80 0000 00003459 c6120302 00000000")), "malformed", /opcode 128/);
  });
});

describe("PCP (RFC 6887)", () => {
  const nonce = hex("0102030405060708090a0b0c");

  it("encodes ANNOUNCE (14.1) and MAP (11.1) with IPv4-mapped addresses (5)", () => {
    expect(pcp.encodeAnnounceRequest("198.19.3.10")).toEqual(hex("02 00 0000 00000000 00000000000000000000ffff c613030a"));
    const m = pcp.encodeMapRequest({ clientAddress: "198.19.3.10", nonce, internalPort: 41641, suggestedExternalPort: 41641, lifetimeS: 7200 });
    expect(m).toEqual(hex(
      "02 01 0000 00001c20 00000000000000000000ffff c613030a" // header: version 2, MAP, lifetime, client address
      + "0102030405060708090a0b0c 11 000000 a2a9 a2a9" // nonce, protocol 17 (UDP), reserved, internal, suggested external
      + "00000000000000000000000000000000", // suggested external address: any (all zeros)
    ));
    expect(m.length).toBe(60);
  });

  it("decodes a MAP response (7.2 header, 11.1 body)", () => {
    const r = pcp.decodeMapResponse(hex(
      "02 81 00 00 00001c20 00003459 000000000000000000000000" // version, R|MAP, reserved, result 0, lifetime, epoch, reserved
      + "0102030405060708090a0b0c 11 000000 a2a9 c350 00000000000000000000ffff c6120302",
    ));
    expect(r).toMatchObject({ opcode: 1, result: 0, lifetimeS: 7200, epoch: 13401, protocol: 17, internalPort: 41641, externalPort: 50000, externalAddress: "198.18.3.2" });
    expect(r.nonce).toEqual(nonce);
  });

  it("names result codes and rejects malformed answers", () => {
    const refused = hex("02 81 00 02 00000000 00003459 000000000000000000000000" + "00".repeat(36));
    expectPortmapError(() => pcp.decodeMapResponse(refused), "refused", /result 2 \(NOT_AUTHORIZED\)/);
    expectPortmapError(() => pcp.decodeMapResponse(hex("00 81 0001 00003459")), "refused", /NAT-PMP \(version 0\) only/);
    expectPortmapError(() => pcp.decodeMapResponse(hex("02 81 00")), "malformed", /shorter than a header/);
    expectPortmapError(() => pcp.decodeResponseHeader(hex("02 01 00 00" + "00".repeat(20))), "malformed", /no response bit/);
    const short = hex("02 81 00 00 00001c20 00003459 000000000000000000000000 0102");
    expectPortmapError(() => pcp.decodeMapResponse(short), "malformed", /not a PCP message/);
    const announce = hex("02 80 00 00 00000000 00003459 000000000000000000000000");
    expectPortmapError(() => pcp.decodeMapResponse(announce), "malformed", /expected MAP/);
  });
});

describe("UPnP IGD", () => {
  it("encodes M-SEARCH and reads the SSDP answer's LOCATION", () => {
    expect(upnp.encodeMSearch()).toMatch(/^M-SEARCH \* HTTP\/1\.1\r\nHOST: 239\.255\.255\.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n$/);
    const a = upnp.parseSsdpAnswer("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nlocation: http://198.19.3.1:39279/rootDesc.xml\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n\r\n");
    expect(a.location).toBe("http://198.19.3.1:39279/rootDesc.xml");
    expectPortmapError(() => upnp.parseSsdpAnswer("NOTIFY * HTTP/1.1\r\n\r\n"), "malformed", /not HTTP 200/);
    expectPortmapError(() => upnp.parseSsdpAnswer("HTTP/1.1 200 OK\r\nST: x\r\n\r\n"), "malformed", /no http LOCATION/);
  });

  it("finds the WANIPConnection control URL in a device description", () => {
    const xml = `<root><device><deviceList><device><serviceList>
      <service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><controlURL>/ctl/CmnIfCfg</controlURL></service>
      <service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL></service>
      </serviceList></device></deviceList></device></root>`;
    expect(upnp.parseDescription(xml, "http://198.19.3.1:39279/rootDesc.xml")).toEqual({
      serviceType: "urn:schemas-upnp-org:service:WANIPConnection:1", controlUrl: "http://198.19.3.1:39279/ctl/IPConn",
    });
    expectPortmapError(() => upnp.parseDescription("<root/>", "http://198.19.3.1/"), "unavailable", /no WANIPConnection/);
  });

  it("encodes a SOAP action and reads its answer, a fault, and a garbled answer", () => {
    const body = upnp.encodeSoapRequest("urn:schemas-upnp-org:service:WANIPConnection:1", "DeletePortMapping", [["NewRemoteHost", ""], ["NewExternalPort", 41641], ["NewProtocol", "UDP"]]);
    expect(body).toContain('<u:DeletePortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>41641</NewExternalPort><NewProtocol>UDP</NewProtocol></u:DeletePortMapping>');
    const ok = `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalIPAddress>198.18.3.2</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`;
    expect(upnp.parseSoapResponse(ok, "GetExternalIPAddress", ["NewExternalIPAddress"])).toEqual({ NewExternalIPAddress: "198.18.3.2" });
    const fault = `<s:Envelope><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`;
    try { upnp.parseSoapResponse(fault, "AddPortMapping", []); throw new Error("no throw"); } catch (err) {
      expect(err).toBeInstanceOf(PortmapError);
      expect((err as PortmapError).result).toBe(718);
      expect((err as Error).message).toMatch(/UPnP error 718 \(ConflictInMappingEntry\)/);
    }
    expectPortmapError(() => upnp.parseSoapResponse("<html>nope</html>", "AddPortMapping", []), "malformed", /no AddPortMappingResponse/);
    expectPortmapError(() => upnp.parseSoapResponse("<u:GetExternalIPAddressResponse></u:GetExternalIPAddressResponse>", "GetExternalIPAddress", ["NewExternalIPAddress"]), "malformed", /no NewExternalIPAddress/);
  });
});

describe("default gateway", () => {
  it("reads the default route from /proc/net/route (little-endian hex)", () => {
    const text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      + "eth0\t00000000\t010313C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
      + "eth0\t000313C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    expect(parseProcNetRoute(text)).toBe("198.19.3.1");
    expect(parseProcNetRoute("Iface\tDestination\n")).toBeUndefined();
    expect(parseProcNetRoute("garbage")).toBeUndefined();
  });
});

describe("port mapper retries", () => {
  it("back off when no protocol answers: 1, 2, 4 ... minutes, at most 30", async () => {
    const { retryDelay } = await import("../../../src/nat/portmap/portmapper.js");
    expect([1, 2, 3, 4].map(retryDelay)).toEqual([60_000, 120_000, 240_000, 480_000]);
    expect(retryDelay(6)).toBe(1_800_000);
    expect(retryDelay(50)).toBe(1_800_000);
  });
});
