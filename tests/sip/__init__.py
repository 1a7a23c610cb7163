"""SIP tests: JsSIP in Chromium against Kamailio (the FusionPBX stand-in), calls from SIPp."""
