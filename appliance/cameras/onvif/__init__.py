"""ONVIF for the camera registry: WS-Discovery suggestions, onboarding, and the address
policy (SSRF guard) that every camera-supplied address passes. See docs/design/onvif.md.

    policy = AddressPolicy(settings.networks())            # the box's camera/LAN networks
    found = probe(policy, timeout=3.0)                      # suggestions, nothing fetched
    camera = onboard(found[0].usable_xaddrs[0], Credentials(user, password), policy,
                     endpoint_reference=found[0].endpoint)
    policy.check_url(camera.main.uri, "stream")             # again before the recorder opens it
"""

from appliance.cameras.onvif.client import AuthFailed, OperationFault
from appliance.cameras.onvif.discovery import DiscoveredDevice, XAddr, probe
from appliance.cameras.onvif.onboard import OnboardedCamera, OnvifStream, onboard
from appliance.cameras.onvif.policy import AddressPolicy, AddressRefused, Target, strip_credentials
from appliance.cameras.onvif.soap import BadResponse
from appliance.cameras.onvif.transport import CameraUnreachable, Timeouts

__all__ = ["AddressPolicy", "AddressRefused", "AuthFailed", "BadResponse", "CameraUnreachable",
           "DiscoveredDevice", "OnboardedCamera", "OnvifStream", "OperationFault", "Target",
           "Timeouts", "XAddr", "onboard", "probe", "strip_credentials"]
